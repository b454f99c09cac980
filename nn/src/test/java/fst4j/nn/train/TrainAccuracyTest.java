package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.data.Datasets;
import fst4j.tensor.Blas;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** 200 steps on real Fashion-MNIST images learn, densely and with FST x3 + IR. */
class TrainAccuracyTest {
    @Test
    void mlpReachesEightyPercentTrainAccuracyInTwoHundredSteps() throws Exception {
        assumeTrue(Datasets.locateFashionMnist(null).isPresent(),
                "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); skipping the accuracy test");
        TrainData data = TrainData.load("fashion-mnist");
        int threads = Blas.threads();
        Blas.setThreads(1);
        try {
            for (Method m : new Method[]{Method.DENSE, Method.FST3_IR}) {
                // 1600 images, batch 32: 50 steps per epoch, 4 epochs = 200 steps
                TrainConfig cfg = TrainConfig.defaults(m).withModel("mlp").withBatchSize(32).withEpochs(4).withLr(0.05)
                        .withSubsets(1600, 1000).withSeed(1);
                try (Trainer t = new Trainer(cfg, data)) {
                    assertEquals(200, t.totalSteps());
                    long correct = 0, seen = 0;
                    double lossSum = 0;
                    while (!t.finished()) {
                        correct = 0;
                        seen = 0;
                        lossSum = 0;
                        while (t.epochHasNext()) {
                            Trainer.StepResult r = t.trainStep();
                            assertTrue(Double.isFinite(r.loss()), m + " loss at step " + r.step());
                            correct += r.correct();
                            seen += r.size();
                            lossSum += r.loss() * r.size();
                        }
                        t.endEpoch();
                    }
                    assertEquals(200, t.stepsDone());
                    double trainAcc = (double) correct / seen;
                    Trainer.Eval ev = t.evaluate();
                    assertEquals(1000, ev.samples());
                    assertTrue(trainAcc > 0.80, m + ": last-epoch train accuracy " + trainAcc + " (loss " + lossSum / seen + ")");
                    assertTrue(ev.accuracy() > 0.75, m + ": test accuracy " + ev.accuracy());
                }
            }
        } finally {
            Blas.setThreads(threads);
        }
    }
}
