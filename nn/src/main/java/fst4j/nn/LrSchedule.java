package fst4j.nn;

/**
 * Learning rate as a function of the optimizer step (0-based). Besides {@link #constant}, {@link #cosine} and
 * {@link #step}, torch.optim.lr_scheduler's usual ones, each equal to torch 1.13's value at every step (LrScheduleTorchTest):
 * {@link #linear} (warm-up, then linear decay), and per epoch as torch users step them ({@code scheduler.step()} once an
 * epoch) {@link #stepLR}, {@link #multiStepLR}, {@link #exponentialLR}; per step {@link #oneCycle}. Every one is a pure
 * function of the step, so a resumed run (which restores the step) continues its schedule exactly.
 */
@FunctionalInterface
public interface LrSchedule {
    double lr(long step);

    static LrSchedule constant(double lr) { return s -> lr; }

    /**
     * Linear warm-up over warmupSteps (baseLr * (step + 1) / warmupSteps: baseLr / warmupSteps at step 0, baseLr at step
     * warmupSteps - 1), then cosine annealing from baseLr to minLr at totalSteps.
     */
    static LrSchedule cosine(double baseLr, long warmupSteps, long totalSteps, double minLr) {
        if (totalSteps <= 0 || warmupSteps < 0 || warmupSteps > totalSteps)
            throw new IllegalArgumentException("cosine schedule needs 0 <= warmup <= total, total > 0; got warmup " + warmupSteps + ", total " + totalSteps);
        return s -> {
            if (s < warmupSteps) return baseLr * (s + 1) / warmupSteps;
            double t = Math.min(1.0, (double) (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
            return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * t));
        };
    }

    /** baseLr * gamma^(number of milestones passed); gamma finite and > 0, milestones in steps >= 0 (any order). */
    static LrSchedule step(double baseLr, double gamma, long... milestones) {
        checkGamma(gamma);   // a negative gamma gave a negative lr, which only setLr refused, at the milestone
        if (milestones == null) throw new IllegalArgumentException("step schedule needs milestones (none: constant)");
        for (long m : milestones) if (m < 0) throw new IllegalArgumentException("step schedule milestones must be steps >= 0, got " + m);
        return s -> {
            int passed = 0;
            for (long m : milestones) if (s >= m) passed++;
            return baseLr * Math.pow(gamma, passed);
        };
    }

    /**
     * Linear warm-up as {@link #cosine}'s (baseLr * (step + 1) / warmupSteps), then a straight line from baseLr at step
     * warmupSteps to minLr at totalSteps (transformers' get_linear_schedule_with_warmup with minLr 0; in torch 1.13 a
     * SequentialLR of LinearLR(1 / warmup, 1, warmup - 1) and LinearLR(1, 0, total - warmup)). Computed in closed form,
     * where torch's LinearLR multiplies its last value by a ratio each step: the two agree to about 1e-15 relative.
     */
    static LrSchedule linear(double baseLr, long warmupSteps, long totalSteps, double minLr) {
        if (totalSteps <= 0 || warmupSteps < 0 || warmupSteps > totalSteps)
            throw new IllegalArgumentException("linear schedule needs 0 <= warmup <= total, total > 0; got warmup " + warmupSteps + ", total " + totalSteps);
        return s -> {
            if (s < warmupSteps) return baseLr * (s + 1) / warmupSteps;
            double t = Math.min(1.0, (double) (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
            return minLr + (baseLr - minLr) * (1 - t);
        };
    }

    /**
     * torch.optim.lr_scheduler.StepLR(step_size, gamma) stepped once an epoch: baseLr times gamma once per stepSize epochs,
     * epoch = step / stepsPerEpoch. The factors are applied one after another as torch's chained form does (lr * gamma at
     * each decay, not baseLr * gamma^k), so the values are torch's bit for bit.
     */
    static LrSchedule stepLR(double baseLr, int stepSize, double gamma, long stepsPerEpoch) {
        if (stepSize < 1) throw new IllegalArgumentException("StepLR's step size must be >= 1 epoch, got " + stepSize);
        checkGamma(gamma);
        checkStepsPerEpoch(stepsPerEpoch);
        ChainedLr c = new ChainedLr(baseLr, gamma);
        return s -> c.lr(s / stepsPerEpoch / stepSize);
    }

    /**
     * torch.optim.lr_scheduler.MultiStepLR(milestones, gamma) stepped once an epoch: baseLr times gamma at each milestone
     * epoch passed (epoch = step / stepsPerEpoch); milestones strictly increasing, >= 1. Chained as torch's (bit for bit).
     */
    static LrSchedule multiStepLR(double baseLr, int[] milestones, double gamma, long stepsPerEpoch) {
        if (milestones == null || milestones.length == 0) throw new IllegalArgumentException("MultiStepLR needs at least one milestone");
        for (int i = 0; i < milestones.length; i++)
            if (milestones[i] < 1 || i > 0 && milestones[i] <= milestones[i - 1])
                throw new IllegalArgumentException("MultiStepLR's milestones must be epochs >= 1 in increasing order, got " + java.util.Arrays.toString(milestones));
        checkGamma(gamma);
        checkStepsPerEpoch(stepsPerEpoch);
        int[] m = milestones.clone();
        ChainedLr c = new ChainedLr(baseLr, gamma);
        return s -> {
            long epoch = s / stepsPerEpoch, passed = 0;
            for (int x : m) if (epoch >= x) passed++;
            return c.lr(passed);
        };
    }

    /**
     * torch.optim.lr_scheduler.ExponentialLR(gamma) stepped once an epoch: baseLr * gamma^epoch, epoch = step /
     * stepsPerEpoch (stepsPerEpoch 1: per step), chained as torch's (bit for bit).
     */
    static LrSchedule exponentialLR(double baseLr, double gamma, long stepsPerEpoch) {
        checkGamma(gamma);
        checkStepsPerEpoch(stepsPerEpoch);
        ChainedLr c = new ChainedLr(baseLr, gamma);
        return s -> c.lr(s / stepsPerEpoch);
    }

    /**
     * torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy='cos', div_factor,
     * final_div_factor, three_phase=False), stepped once a step: from maxLr / divFactor up to maxLr over the first
     * pctStart of the steps, then down to maxLr / divFactor / finalDivFactor at the last, each phase a half cosine; the
     * same double operations as torch's get_lr. The learning rate only: torch also cycles SGD's momentum (0.85-0.95) by
     * default; this is its cycle_momentum=False. A phase of zero length (pctStart * totalSteps = 1, where torch divides
     * by zero) holds its start value. A step past totalSteps - 1 (which torch refuses) holds the final value.
     */
    static LrSchedule oneCycle(double maxLr, long totalSteps, double pctStart, double divFactor, double finalDivFactor) {
        if (totalSteps <= 0) throw new IllegalArgumentException("OneCycleLR needs total steps > 0, got " + totalSteps);
        if (!(pctStart >= 0 && pctStart < 1)) throw new IllegalArgumentException("OneCycleLR's pct_start must be in [0, 1), got " + pctStart);
        if (!(divFactor > 0) || divFactor == Double.POSITIVE_INFINITY) throw new IllegalArgumentException("OneCycleLR's div_factor must be finite and > 0, got " + divFactor);
        if (!(finalDivFactor > 0) || finalDivFactor == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("OneCycleLR's final_div_factor must be finite and > 0, got " + finalDivFactor);
        double initial = maxLr / divFactor, min = initial / finalDivFactor;
        double end1 = pctStart * totalSteps - 1, end2 = totalSteps - 1;   // torch: float(pct_start * total_steps) - 1, total_steps - 1
        return s -> {
            double step = Math.min(s, totalSteps - 1);
            if (step <= end1) return cosAnneal(initial, maxLr, step, 0, end1);
            return cosAnneal(maxLr, min, step, end1, end2);
        };
    }

    /** torch's _annealing_cos at pct = (step - start) / (end - start): end + (start - end) / 2 * (cos(pi pct) + 1). */
    private static double cosAnneal(double from, double to, double step, double startStep, double endStep) {
        if (endStep == startStep) return from;
        double pct = (step - startStep) / (endStep - startStep);
        // Math.cos, not StrictMath's fdlibm: on this JDK it gives glibc's values, Python's math.cos, where fdlibm was 2 ulp off at some steps
        double cosOut = Math.cos(Math.PI * pct) + 1;
        return to + (from - to) / 2.0 * cosOut;
    }

    private static void checkGamma(double gamma) {
        if (!(gamma > 0) || gamma == Double.POSITIVE_INFINITY) throw new IllegalArgumentException("gamma must be finite and > 0, got " + gamma);
    }

    private static void checkStepsPerEpoch(long stepsPerEpoch) {
        if (stepsPerEpoch < 1) throw new IllegalArgumentException("steps per epoch must be >= 1, got " + stepsPerEpoch);
    }
}
