package fst4j.tests;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.SGD;
import fst4j.nn.SrSte;
import fst4j.nn.data.DataLoader;
import fst4j.nn.data.Datasets;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The README's lead example, as written there (on a 512-image subset so that it stays quick). */
class ReadmeExampleTest {
    @Test
    void leadExampleRunsAndFreesEveryStep() throws Exception {
        Assumptions.assumeTrue(Datasets.locateFashionMnist(null).isPresent(), "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)");
        var data = Datasets.fashionMnist();
        var loader = DataLoader.builder(data.train().subset(512)).batchSize(128).shuffle(true).seed(0).build();
        long before = Memory.bytesInUse();
        double first = Double.NaN, last = Double.NaN;
        // ---- README example, from here ----
        try (Module model = Models.resnetSmall(1, 10, SparseConfig.Method.FST3_IR, 0);
             SGD opt = new SGD(model.parameters(), 0.1, 0.9, 5e-4, false)) {
            while (loader.hasNext()) try (Scope step = Scope.open()) {        // frees everything the step allocated
                var batch = loader.next();
                Var loss = NN.crossEntropy(model.forward(Var.of(batch.images())), batch.labels(), 0.1);
                loss.backward(); SrSte.addDecay(model, 2e-4); opt.step(); opt.zeroGrad();
        // ---- to here ----
                if (Double.isNaN(first)) first = loss.item();
                last = loss.item();
            }
        }
        assertTrue(Double.isFinite(first) && Double.isFinite(last), first + " -> " + last);
        assertEquals(before, Memory.bytesInUse(), "model, optimizer and every step's tensors are freed");
    }
}
