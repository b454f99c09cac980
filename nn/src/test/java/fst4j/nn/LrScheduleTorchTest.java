package fst4j.nn;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * LrSchedule's torch schedulers against torch 1.13's torch.optim.lr_scheduler, step by step: the learning rate each
 * optimizer step uses (the group's lr before the step), with the per-epoch schedulers stepped once an epoch of
 * stepsPerEpoch steps as torch users call them. StepLR, MultiStepLR, ExponentialLR and OneCycleLR are equal bit for bit
 * (the same chained products, the same double operations); linear is a closed form where torch's LinearLR chains ratios,
 * so it agrees to 1e-12 of the peak (torch's own rounding: 0.020000000000000004 for 0.02).
 */
class LrScheduleTorchTest {
    private static final int SPE = 7;   // optimizer steps per epoch of the per-epoch schedulers

    private static double[] values(LrSchedule s, int steps) {
        double[] v = new double[steps];
        for (int i = 0; i < steps; i++) v[i] = s.lr(i);
        return v;
    }

    @Test
    void everyScheduleIsTorchsStepByStep(@TempDir Path dir) throws Exception {
        String script = """
                import warnings
                warnings.filterwarnings('ignore')   # SequentialLR's deprecation notes on stderr, which TorchPeer reads too
                import torch
                from torch.optim.lr_scheduler import *
                SPE = %d
                def opt(lr): return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
                def per_step(key, o, s, n):
                    v = []
                    for i in range(n): v.append(o.param_groups[0]['lr']); o.step(); s.step()
                    print(key, *map(repr, v))
                def per_epoch(key, o, s, epochs):
                    v = []
                    for e in range(epochs):
                        for b in range(SPE): v.append(o.param_groups[0]['lr']); o.step()
                        s.step()
                    print(key, *map(repr, v))
                o = opt(0.1); per_step('linear', o, SequentialLR(o, [LinearLR(o, 1 / 5, 1.0, total_iters=4), LinearLR(o, 1.0, 0.0, total_iters=35)], milestones=[5]), 40)
                o = opt(0.1); per_step('linear0', o, LinearLR(o, 1.0, 0.0, total_iters=30), 30)
                o = opt(0.1); per_epoch('step', o, StepLR(o, step_size=2, gamma=0.3), 9)
                o = opt(0.05); per_epoch('multistep', o, MultiStepLR(o, milestones=[2, 5, 6], gamma=0.3), 9)
                o = opt(0.1); per_epoch('exp', o, ExponentialLR(o, gamma=0.9), 12)
                o = opt(0.1); per_step('onecycle', o, OneCycleLR(o, max_lr=0.1, total_steps=50, cycle_momentum=False), 50)
                o = opt(0.3); per_step('onecycle2', o, OneCycleLR(o, max_lr=0.3, total_steps=37, pct_start=0.25, div_factor=10,
                                                                  final_div_factor=100, cycle_momentum=False), 37)
                o = opt(0.3); per_step('onecycle0', o, OneCycleLR(o, max_lr=0.3, total_steps=20, pct_start=0.0, cycle_momentum=False), 20)
                """.formatted(SPE);
        Map<String, double[]> t = TorchPeer.run(dir, script);
        assertArrayEquals(t.get("linear"), values(LrSchedule.linear(0.1, 5, 40, 0), 40), 1e-12 * 0.1, "linear with 5 warm-up steps");
        assertArrayEquals(t.get("linear0"), values(LrSchedule.linear(0.1, 0, 30, 0), 30), 1e-12 * 0.1, "linear without warm-up");
        assertArrayEquals(t.get("step"), values(LrSchedule.stepLR(0.1, 2, 0.3, SPE), 9 * SPE), "StepLR");
        assertArrayEquals(t.get("multistep"), values(LrSchedule.multiStepLR(0.05, new int[]{2, 5, 6}, 0.3, SPE), 9 * SPE), "MultiStepLR");
        assertArrayEquals(t.get("exp"), values(LrSchedule.exponentialLR(0.1, 0.9, SPE), 12 * SPE), "ExponentialLR");
        assertArrayEquals(t.get("onecycle"), values(LrSchedule.oneCycle(0.1, 50, 0.3, 25, 1e4), 50), "OneCycleLR's defaults");
        assertArrayEquals(t.get("onecycle2"), values(LrSchedule.oneCycle(0.3, 37, 0.25, 10, 100), 37), "OneCycleLR");
        assertArrayEquals(t.get("onecycle0"), values(LrSchedule.oneCycle(0.3, 20, 0, 25, 1e4), 20), "OneCycleLR, pct_start 0");
    }

    /** The shapes without torch: the peaks, the ends, the decays at the epochs named. */
    @Test
    void theShapes() {
        LrSchedule one = LrSchedule.oneCycle(0.1, 50, 0.3, 25, 1e4);
        assertEquals(0.1 / 25, one.lr(0), 1e-17);   // torch: 0.0040000000000000036 (the half cosine at 0)
        assertEquals(0.1, one.lr(14), 0.0, "the peak at pct_start * total - 1");
        assertEquals(0.1 / 25 / 1e4, one.lr(49), 1e-18);
        assertEquals(one.lr(49), one.lr(60), 0.0, "past the end: held");
        LrSchedule ms = LrSchedule.multiStepLR(1, new int[]{1, 3}, 0.5, 4);
        assertArrayEquals(new double[]{1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25}, values(ms, 13));
        assertEquals(0.0, LrSchedule.linear(0.1, 5, 40, 0).lr(40));
        assertEquals(0.1 * 0.9 * 0.9, LrSchedule.exponentialLR(0.1, 0.9, 1).lr(2));
    }

    @Test
    void badParametersAreRefusedByName() {
        String[][] cases = {
                {"StepLR's step size must be >= 1 epoch, got 0", "step0"},
                {"gamma must be finite and > 0, got 0.0", "gamma0"},
                {"MultiStepLR's milestones must be epochs >= 1 in increasing order, got [3, 2]", "ms"},
                {"MultiStepLR needs at least one milestone", "ms0"},
                {"OneCycleLR's pct_start must be in [0, 1), got 1.0", "pct"},
                {"OneCycleLR's div_factor must be finite and > 0, got -1.0", "div"},
                {"linear schedule needs 0 <= warmup <= total", "lin"},
                {"steps per epoch must be >= 1, got 0", "spe"}};
        for (String[] c : cases) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> {
                switch (c[1]) {
                    case "step0" -> LrSchedule.stepLR(0.1, 0, 0.1, 1);
                    case "gamma0" -> LrSchedule.exponentialLR(0.1, 0, 1);
                    case "ms" -> LrSchedule.multiStepLR(0.1, new int[]{3, 2}, 0.1, 1);
                    case "ms0" -> LrSchedule.multiStepLR(0.1, new int[0], 0.1, 1);
                    case "pct" -> LrSchedule.oneCycle(0.1, 10, 1, 25, 1e4);
                    case "div" -> LrSchedule.oneCycle(0.1, 10, 0.3, -1, 1e4);
                    case "lin" -> LrSchedule.linear(0.1, 11, 10, 0);
                    default -> LrSchedule.exponentialLR(0.1, 0.9, 0);
                }
            }, c[1]);
            assertTrue(e.getMessage().contains(c[0]), c[1] + ": " + e.getMessage());
        }
    }
}
