package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.cli.BlasThreads;
import fst4j.sparse.AuthorsFixed24;
import fst4j.sparse.NM;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * FlipRate is SR-STE's flip rate ||m_t - m_{t-1}||_1 / D: equal to a float64 computation from the dense masks of two
 * consecutive steps (Conv2d and Linear layers; 2:4, read from the 2:4 kernels' metadata, and 2:8, by the host rule; the
 * reference takes each rule's dense mask of W in float64),
 * zero when the weights do not change, the exact value for a constructed change, the dense layers left out, a rule whose
 * mask cannot be read refused by the layer's name, nothing left off-heap.
 */
class FlipRateTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /** A conv (W [8, 4, 3, 3], K 36) and a linear layer (W [12, 128]) at cfg, between a dense conv and a dense classifier. */
    static Sequential model(SparseConfig.Method method, NM nm, long seed) {
        Rng rng = new Rng(seed);
        return new Sequential(
                new Conv2d(2, 4, 3, 1, 1, false, Method.DENSE.config(), rng), new ReLU(),
                new Conv2d(4, 8, 3, 1, 1, false, method.config(seed, nm), rng), new ReLU(), new Flatten(),
                new Linear(8 * 4 * 4, 12, true, method.config(seed + 1, nm), rng), new ReLU(),
                new Linear(12, 3, true, Method.DENSE.config(), rng));
    }

    /** The float64 0/1 masks of every layer whose W is pruned, by the rule's own dense mask of W as [Cout, K]. */
    static Map<String, double[]> denseMasks(Module m) {
        Map<String, double[]> out = new java.util.LinkedHashMap<>();
        Models.sparseLayers(m).forEach((name, layer) -> {
            Sparsifier rule = layer.sparsity().w();
            if (rule instanceof Sparsifier.Dense) return;
            Tensor w = layer.weight().value();
            try (Tensor host = w.to(fst4j.tensor.Device.CPU); Tensor w64 = host.to(DType.F64); Tensor wm = w64.reshape(w.size(0), (int) (w.numel() / w.size(0))); Tensor mask = rule.mask(wm)) {
                out.put(name, mask.toDoubleArray());
            }
        });
        return out;
    }

    /** Σ |m_t - m_{t-1}| / D per layer and over all, in float64: {layer rates..., model rate}. */
    static double[] bruteForce(Map<String, double[]> before, Map<String, double[]> after) {
        double[] out = new double[after.size() + 1];
        double flips = 0, weights = 0;
        int i = 0;
        for (var e : after.entrySet()) {
            double[] a = before.get(e.getKey()), b = e.getValue();
            double d = 0;
            for (int j = 0; j < b.length; j++) d += Math.abs(b[j] - a[j]);
            out[i++] = d / b.length;
            flips += d;
            weights += b.length;
        }
        out[i] = flips / weights;
        return out;
    }

    /** One SGD step with SR-STE's decay on random images and labels: big enough steps that masks flip. */
    static void trainStep(Module m, SGD opt, long seed) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(seed);
            Tensor x = r.normal(0, 1, 6, 2, 4, 4);
            fst4j.tensor.Device d = m.parameters().get(0).value().device();
            if (d != fst4j.tensor.Device.CPU) x = x.to(d);   // the model's device (CudaFlipRateTest)
            int[] labels = new int[6];
            for (int i = 0; i < 6; i++) labels[i] = (int) ((seed * 7 + i * 3) % 3);
            Var loss = NN.crossEntropy(m.forward(Var.of(x)), labels, 0);
            loss.backward();
            SrSte.stepWithDecay(m, opt, 2e-4);
            opt.zeroGrad();
        }
    }

    @Test
    void theRateIsTheFloat64L1DistanceOfConsecutiveDenseMasks() {
        for (NM nm : new NM[]{NM.TWO_FOUR, new NM(2, 8)}) {
                long seed = nm.m() * 10;
                long bytes = Memory.bytesInUse();
                try (Sequential m = model(Method.SR_STE, nm, seed); SGD opt = new SGD(m.parameters(), 0.5, 0.9, 0, false)) {
                    try (FlipRate flips = new FlipRate(m)) {
                        assertEquals(List.of("2", "5"), flips.layers(), "the pruned conv and linear layers; the dense ends not counted");
                        assertEquals(8 * 4 * 9 + 12 * 128, flips.weights());
                        Map<String, double[]> before = denseMasks(m);
                        long total = 0;
                        for (int step = 0; step < 4; step++) {
                            trainStep(m, opt, seed * 100 + step);
                            Map<String, double[]> after = denseMasks(m);
                            FlipRate.Step s = flips.step();
                            double[] want = bruteForce(before, after);
                            assertEquals(2, s.layers().size());
                            for (int l = 0; l < 2; l++) assertEquals(want[l], s.layers().get(l).rate(), nm + " step " + step + " layer " + l);
                            assertEquals(want[2], s.rate(), nm + " step " + step);
                            assertTrue(s.rate() >= 0 && s.rate() <= 1);
                            total += s.flips();
                            before = after;
                        }
                        assertTrue(total > 0, nm + ": the steps flipped no mask entry, so the comparison proved nothing");
                        // weights left as they are: every layer's rate is exactly 0, each still counted
                        FlipRate.Step still = flips.step();
                        assertEquals(2, still.layers().size());
                        assertEquals(0.0, still.rate());
                        assertEquals(0, still.flips());
                    }
                }
                assertEquals(bytes, Memory.bytesInUse(), nm + ": the readings left nothing off-heap");
        }
    }

    /** Sets a Linear's weight [out, in] to w, row by row. */
    private static void set(Linear l, float... w) {
        try (Tensor t = Tensor.of(w, l.out, l.in)) { l.weight().value().copyFrom(t); }
    }

    @Test
    void aConstructedChangeGivesTheExactRate() {
        Rng rng = new Rng(1);
        try (Linear one = new Linear(4, 1, false, Method.SR_STE.config(), rng)) {
            set(one, 4, 3, 2, 1);                       // keeps {0, 1}
            try (FlipRate f = new FlipRate(one)) {
                assertEquals(List.of(""), f.layers());
                set(one, 4, 1, 3, 2);                   // keeps {0, 2}: 1 dropped, 2 taken
                FlipRate.Step s = f.step();
                assertEquals(2, s.flips());
                assertEquals(2.0 / 4, s.rate());
                set(one, 1, 4, 2, 3);                   // keeps {1, 3}: both kept positions moved
                assertEquals(4.0 / 4, f.step().rate());
                set(one, 1, 4, -2, -3);                 // the same magnitudes: the same mask
                assertEquals(0.0, f.step().rate());
            }
        }
        try (Linear two = new Linear(4, 2, false, Method.SR_STE.config(), rng)) {
            set(two, 4, 3, 2, 1, 1, 2, 3, 4);          // keeps {0, 1} and {2, 3}
            try (FlipRate f = new FlipRate(two)) {
                set(two, 4, 1, 2, 0.5f, 1, 2, 3, 4);    // row 0 keeps {0, 2}
                FlipRate.Step s = f.step();
                assertEquals(2.0 / 8, s.rate());
                assertEquals(List.of(new FlipRate.Layer("", 2, 8)), s.layers());
            }
        }
        try (Linear nm = new Linear(8, 1, false, Method.SR_STE.config(0, new NM(2, 8)), rng)) {
            set(nm, 8, 7, 6, 5, 4, 3, 2, 1);            // 2:8 keeps {0, 1}
            try (FlipRate f = new FlipRate(nm)) {
                set(nm, 8, 1, 7, 6, 5, 4, 3, 2);        // keeps {0, 2}
                assertEquals(2.0 / 8, f.step().rate());
            }
        }
    }

    @Test
    void aModelWithoutPrunedWeightsHasNoRateAndAMaskThatAppearsHasNoneAtFirst() {
        try (Sequential dense = model(Method.DENSE, NM.TWO_FOUR, 3); FlipRate f = new FlipRate(dense)) {
            assertEquals(List.of(), f.layers());
            FlipRate.Step s = f.step();
            assertTrue(s.layers().isEmpty());
            assertTrue(Double.isNaN(s.rate()));
        }
        try (Sequential asp = model(Method.ASP, NM.TWO_FOUR, 3); FlipRate f = new FlipRate(asp)) {
            assertEquals(List.of(), f.layers(), "ASP's layers are dense until their pruning");
            assertEquals(2, Asp.prune(asp));
            FlipRate.Step at = f.step();
            assertTrue(Double.isNaN(at.rate()), "no mask at the step before: no rate at the pruning step");
            assertEquals(List.of("2", "5"), f.layers());
            try (SGD opt = new SGD(asp.parameters(), 0.5, 0.9, 0, false)) { trainStep(asp, opt, 5); }
            FlipRate.Step after = f.step();
            assertEquals(2, after.layers().size());
            assertEquals(0.0, after.rate(), "a frozen mask does not flip");
        }
    }

    @Test
    void aMaskThatCannotBeReadIsRefusedNamingTheLayerAndAClosedOneRefusesUse() {
        try (Sequential m = model(Method.SR_STE, NM.TWO_FOUR, 4)) {
            Models.override(m, "5", Method.SR_STE.config().withW(new AuthorsFixed24(1, 3)));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new FlipRate(m));
            assertTrue(e.getMessage().startsWith("flip rate: layer 5 prunes W by AuthorsFixed24"), e.getMessage());
            Models.override(m, "5", Method.SR_STE.config());
            FlipRate f = new FlipRate(m);
            f.close();
            assertThrows(IllegalStateException.class, f::step);
        }
    }

    /** The masks FlipRate reads are the layers' own: what their rule's mask of W says, bit for bit. */
    @Test
    void masksAreTheRulesOwn() {
        try (Sequential m = model(Method.FST3_IR, new NM(2, 8), 6)) {
            Map<String, long[]> masks = FlipRate.masks(m);
            Map<String, double[]> dense = denseMasks(m);
            assertEquals(dense.keySet(), masks.keySet());
            for (var e : dense.entrySet()) {
                List<Boolean> a = new ArrayList<>(), b = new ArrayList<>();
                boolean[] bits = fst4j.sparse.MaskBits.unpack(masks.get(e.getKey()), e.getValue().length);
                for (int i = 0; i < bits.length; i++) { a.add(e.getValue()[i] != 0); b.add(bits[i]); }
                assertEquals(a, b, e.getKey());
            }
        }
    }
}
