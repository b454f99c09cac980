package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.train.FlipRateTrainerTest;
import fst4j.nn.train.MainTest;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.shim.Cuda;
import fst4j.sparse.NM;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.Device;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The flip rate of a model on CUDA (the 2:4 masks read back as fst_k_prune24's metadata, N:M over a host copy of W):
 * equal to the float64 computation from the dense masks of host copies of consecutive steps' weights, with no device
 * memory left behind; a CUDA trainer gives the same bits with the rate measured and without. Against the device or the
 * host emulator, skipped with the reason otherwise.
 */
class CudaFlipRateTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theRateOfACudaModelIsTheFloat64L1DistanceOfItsMasks() {
        for (NM nm : new NM[]{NM.TWO_FOUR, new NM(2, 8)}) {
            long dev = CudaMemory.stats().bytesInUse();
            try (Sequential m = FlipRateTest.model(Method.SR_STE, nm, 21)) {
                m.to(Device.CUDA);
                try (SGD opt = new SGD(m.parameters(), 0.5, 0.9, 0, false); FlipRate flips = new FlipRate(m)) {
                    Map<String, double[]> before = FlipRateTest.denseMasks(m);
                    long total = 0;
                    for (int step = 0; step < 3; step++) {
                        FlipRateTest.trainStep(m, opt, 300 + step);
                        Map<String, double[]> after = FlipRateTest.denseMasks(m);
                        FlipRate.Step s = flips.step();
                        double[] want = FlipRateTest.bruteForce(before, after);
                        for (int l = 0; l < 2; l++) assertEquals(want[l], s.layers().get(l).rate(), nm + " step " + step + " layer " + l);
                        assertEquals(want[2], s.rate(), nm + " step " + step);
                        total += s.flips();
                        before = after;
                    }
                    assertTrue(total > 0, nm + ": no mask entry flipped, so the comparison proved nothing");
                }
            }
            assertEquals(dev, CudaMemory.stats().bytesInUse(), nm + ": the model, the optimizer and the readings' scratch freed");
        }
    }

    @Test
    void aCudaTrainerIsTheSameBitsWithTheRateAndWithout(@TempDir Path tmp) throws Exception {
        TrainData data = TrainData.load("mnist:" + MainTest.idxData(tmp, 64, 16));
        for (String method : new String[]{"sr_ste", "tsm"}) {
            TrainConfig cfg = TrainConfig.defaults(Method.DENSE).withModel("mlp").withRecipe(Recipe.parse(method)).withBatchSize(8).withSeed(5);
            var on = FlipRateTrainerTest.train(cfg, data, true, Device.CUDA);
            var off = FlipRateTrainerTest.train(cfg, data, false, Device.CUDA);
            FlipRateTrainerTest.assertSameBits(on, off, "cuda " + method);
            double sum = 0;
            for (double r : on.rates()) { assertTrue(r >= 0 && r <= 1, method + ": " + r); sum += r; }
            if (method.equals("sr_ste")) assertTrue(sum > 0, "sr_ste's masks flipped in 8 steps");
            else assertEquals(0.0, sum, "tsm: its cached mask, no refresh in 8 steps");
        }
    }
}
