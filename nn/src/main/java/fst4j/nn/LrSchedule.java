package fst4j.nn;

/** Learning rate as a function of the optimizer step (0-based). */
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

    /** baseLr * gamma^(number of milestones passed). */
    static LrSchedule step(double baseLr, double gamma, long... milestones) {
        return s -> {
            int passed = 0;
            for (long m : milestones) if (s >= m) passed++;
            return baseLr * Math.pow(gamma, passed);
        };
    }
}
