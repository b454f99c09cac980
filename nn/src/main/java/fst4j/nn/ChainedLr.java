package fst4j.nn;

/**
 * baseLr multiplied by gamma times times, one product at a time (torch's chained schedulers, bit for bit). The last
 * product is kept: a schedule is read step after step, so each read continues it (the same multiplications, so the
 * same bits) instead of starting again from baseLr, which made a per-step ExponentialLR quadratic in the steps (one read
 * at step 2e8 took ~0.4 s). Thread-safe: the pair is replaced as one.
 */
final class ChainedLr {
    private record Last(long times, double lr) {}
    private final double baseLr, gamma;
    private final java.util.concurrent.atomic.AtomicReference<Last> last;

    ChainedLr(double baseLr, double gamma) {
        this.baseLr = baseLr;
        this.gamma = gamma;
        this.last = new java.util.concurrent.atomic.AtomicReference<>(new Last(0, baseLr));
    }

    double lr(long times) {
        Last l = last.get();
        long i = l.times() <= times ? l.times() : 0;
        double lr = l.times() <= times ? l.lr() : baseLr;
        for (; i < times; i++) lr *= gamma;
        last.set(new Last(times, lr));
        return lr;
    }
}
