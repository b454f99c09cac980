package fst4j.tests.prototypes;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Flatten;
import fst4j.nn.Linear;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Models;
import fst4j.nn.ReLU;
import fst4j.nn.SGD;
import fst4j.nn.Sequential;
import fst4j.nn.SrSte;
import fst4j.nn.data.DataLoader;
import fst4j.nn.data.ImageDataset;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Prototype 2: a model of one's own from the nn layers, the stem conv dense and the rest FST3_IR by a per-layer
 * override, trained a few epochs with SGD + SR-STE on a small learnable data set; the loss must go down.
 */
class CustomModelTrainingPrototypeTest {

    /** 256 noisy 1x12x12 images; the class (0..3) is the quadrant that is bright. */
    static ImageDataset quadrants(long seed) {
        int n = 256, h = 12;
        Rng rng = new Rng(seed);
        float[] px = new float[n * h * h];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            labels[i] = rng.nextInt(4);
            int r0 = labels[i] / 2 * 6, c0 = labels[i] % 2 * 6;
            for (int r = 0; r < h; r++)
                for (int c = 0; c < h; c++) {
                    boolean on = r >= r0 && r < r0 + 6 && c >= c0 && c < c0 + 6;
                    px[i * h * h + r * h + c] = (float) ((on ? 1.0 : 0.0) + 0.3 * rng.nextGaussian());
                }
        }
        return ImageDataset.ofFloats("quadrants", px, n, 1, h, h, labels, 4);
    }

    static Sequential model(long seed) {
        Rng rng = new Rng(seed);
        SparseConfig fst = Method.FST3_IR.config();
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, fst, rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, fst, rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Conv2d(16, 16, 3, 1, 1, false, fst, rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 3 * 3, 4, true, fst, rng));
    }

    @Test
    void perLayerOverrideTrainsWithSrSteAndTheLossFalls() {
        long before = Memory.bytesInUse();
        var loader = DataLoader.builder(quadrants(7)).batchSize(32).shuffle(true).seed(1).build();
        double firstEpoch = 0, lastEpoch = 0;
        try (Sequential model = model(0)) {
            Models.override(model, "0", Method.DENSE.config());   // the stem stays dense
            assertEquals(List.of("0", "3", "7", "12"), List.copyOf(Models.sparseLayers(model).keySet()));
            assertTrue(Models.sparseLayers(model).get("0").sparsity().isDense());
            assertInstanceOf(Sparsifier.Fixed24.class, Models.sparseLayers(model).get("3").sparsity().xt());
            try (SGD opt = new SGD(model.parameters(), 0.05, 0.9, 5e-4, false)) {
                int epochs = 4;
                for (int e = 0; e < epochs; e++) {
                    double sum = 0;
                    int batches = 0;
                    for (loader.startEpoch(e); loader.hasNext(); batches++) {
                        try (Scope step = Scope.open()) {
                            var batch = loader.next();
                            Var loss = NN.crossEntropy(model.forward(Var.of(batch.images())), batch.labels(), 0);
                            sum += loss.item();
                            loss.backward();
                            // the three FST3_IR layers are decayed; the dense stem is not
                            assertEquals(3, SrSte.stepWithDecay(model, opt, SrSte.DEFAULT_LAMBDA));
                            opt.zeroGrad();
                        }
                    }
                    if (e == 0) firstEpoch = sum / batches;
                    lastEpoch = sum / batches;
                }
            }
            // what the FST3_IR layers computed with: S(W) is 2:4 along K
            try (Scope s = Scope.open()) {
                Tensor w = model.namedParameters().get("3.weight").value().reshape(16, -1);
                Tensor sw = Models.sparseLayers(model).get("3").sparsity().w().apply(w);
                assertTrue(fst4j.sparse.Compressed24.isValid24(sw));
            }
        }
        assertTrue(Double.isFinite(lastEpoch) && lastEpoch < 0.5 * firstEpoch, "mean loss per epoch " + firstEpoch + " -> " + lastEpoch);
        assertEquals(before, Memory.bytesInUse(), "model, optimizer and every step are freed");
    }
}
