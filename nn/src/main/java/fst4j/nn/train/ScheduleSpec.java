package fst4j.nn.train;

import fst4j.nn.LrSchedule;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The learning-rate schedule of a training run ({@link TrainConfig#schedule}) and its parameters, as torch's
 * lr_scheduler names them. Kinds: cosine (the default: linear warm-up, cosine to min_lr), linear (the same warm-up, a
 * straight line to min_lr), and torch's StepLR (step), MultiStepLR (multistep), ExponentialLR (exp) stepped once an
 * epoch, OneCycleLR (onecycle) once an optimizer step. Only the kind's own parameters are kept; the others are held at
 * their defaults, so two specs of one kind are equal exactly when the schedule is the same (a checkpoint's is compared
 * with the run's by equality). The warm-up and min_lr are the config's and apply to cosine and linear only.
 */
public record ScheduleSpec(Kind kind, double gamma, int stepSize, int[] milestones, double pctStart, double divFactor, double finalDivFactor) {

    public enum Kind {
        COSINE, LINEAR, STEP, MULTISTEP, EXP, ONECYCLE;

        /** The CLI's and the metadata's name: cosine, linear, step, multistep, exp, onecycle. */
        public String key() { return name().toLowerCase(Locale.ROOT); }

        /** Whether the config's warm-up (and min_lr) shapes it. */
        public boolean warmsUp() { return this == COSINE || this == LINEAR; }

        public static Kind parse(String s) {
            for (Kind k : values()) if (k.key().equals(s.toLowerCase(Locale.ROOT))) return k;
            throw new IllegalArgumentException("unknown schedule '" + s + "' (cosine, linear, step, multistep, exp, onecycle)");
        }
    }

    /** torch's defaults: StepLR's and MultiStepLR's gamma 0.1; OneCycleLR's pct_start 0.3, div_factor 25, final_div_factor 1e4. */
    public static final double GAMMA = 0.1, PCT_START = 0.3, DIV_FACTOR = 25, FINAL_DIV_FACTOR = 1e4;

    /** The default schedule: cosine annealing after a linear warm-up (what every run had before the setting existed). */
    public static final ScheduleSpec COSINE = new ScheduleSpec(Kind.COSINE, GAMMA, 0, new int[0], PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR);

    public ScheduleSpec {
        if (kind == null) throw new IllegalArgumentException("schedule kind is null");
        milestones = milestones == null ? new int[0] : milestones.clone();
        // only the kind's own parameters count: the rest at their defaults
        if (kind != Kind.STEP && kind != Kind.MULTISTEP && kind != Kind.EXP) gamma = GAMMA;
        if (kind != Kind.STEP) stepSize = 0;
        if (kind != Kind.MULTISTEP) milestones = new int[0];
        if (kind != Kind.ONECYCLE) { pctStart = PCT_START; divFactor = DIV_FACTOR; finalDivFactor = FINAL_DIV_FACTOR; }
        // the factories' checks, before a trainer exists: a bad value names itself at the command line
        switch (kind) {
            case STEP -> LrSchedule.stepLR(1, stepSize, gamma, 1);
            case MULTISTEP -> LrSchedule.multiStepLR(1, milestones, gamma, 1);
            case EXP -> LrSchedule.exponentialLR(1, gamma, 1);
            case ONECYCLE -> LrSchedule.oneCycle(1, 1, pctStart, divFactor, finalDivFactor);
            default -> { }
        }
    }

    public static ScheduleSpec cosine() { return COSINE; }
    public static ScheduleSpec linear() { return of(Kind.LINEAR); }
    /** StepLR(step_size = stepSize epochs, gamma). */
    public static ScheduleSpec step(int stepSize, double gamma) { return new ScheduleSpec(Kind.STEP, gamma, stepSize, null, PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR); }
    /** MultiStepLR(milestones in epochs, gamma). */
    public static ScheduleSpec multiStep(int[] milestones, double gamma) { return new ScheduleSpec(Kind.MULTISTEP, gamma, 0, milestones, PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR); }
    /** ExponentialLR(gamma) per epoch. */
    public static ScheduleSpec exponential(double gamma) { return new ScheduleSpec(Kind.EXP, gamma, 0, null, PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR); }
    /** OneCycleLR(max_lr = the config's lr, pct_start, div_factor, final_div_factor), cos annealing, no momentum cycling. */
    public static ScheduleSpec oneCycle(double pctStart, double divFactor, double finalDivFactor) {
        return new ScheduleSpec(Kind.ONECYCLE, GAMMA, 0, null, pctStart, divFactor, finalDivFactor);
    }

    /** A kind that takes no parameters of its own (linear). */
    private static ScheduleSpec of(Kind k) { return new ScheduleSpec(k, GAMMA, 0, null, PCT_START, DIV_FACTOR, FINAL_DIV_FACTOR); }

    /** The schedule of a run of cfg's lr, warm-up and min_lr, over totalSteps optimizer steps of stepsPerEpoch each. */
    public LrSchedule build(TrainConfig cfg, long totalSteps, long stepsPerEpoch) {
        return switch (kind) {
            case COSINE -> LrSchedule.cosine(cfg.lr(), cfg.warmupFor(totalSteps), totalSteps, cfg.minLr());
            case LINEAR -> LrSchedule.linear(cfg.lr(), cfg.warmupFor(totalSteps), totalSteps, cfg.minLr());
            case STEP -> LrSchedule.stepLR(cfg.lr(), stepSize, gamma, stepsPerEpoch);
            case MULTISTEP -> LrSchedule.multiStepLR(cfg.lr(), milestones, gamma, stepsPerEpoch);
            case EXP -> LrSchedule.exponentialLR(cfg.lr(), gamma, stepsPerEpoch);
            case ONECYCLE -> LrSchedule.oneCycle(cfg.lr(), totalSteps, pctStart, divFactor, finalDivFactor);
        };
    }

    /** The metadata keys of a non-default schedule ("schedule" and the kind's parameters); none for cosine. */
    void toMetadata(Map<String, String> m) {
        if (kind == Kind.COSINE) return;   // runs with the default schedule keep the keys they had
        m.put("schedule", kind.key());
        switch (kind) {
            case STEP -> { m.put("step_size", Integer.toString(stepSize)); m.put("gamma", Double.toString(gamma)); }
            case MULTISTEP -> { m.put("milestones", milestonesText()); m.put("gamma", Double.toString(gamma)); }
            case EXP -> m.put("gamma", Double.toString(gamma));
            case ONECYCLE -> {
                m.put("pct_start", Double.toString(pctStart));
                m.put("div_factor", Double.toString(divFactor));
                m.put("final_div_factor", Double.toString(finalDivFactor));
            }
            default -> { }
        }
    }

    /** The schedule in m; a checkpoint without the key (written before schedules, or with cosine) is cosine. */
    static ScheduleSpec fromMetadata(Map<String, String> m) {
        if (!m.containsKey("schedule")) return COSINE;
        Kind k = Kind.parse(m.get("schedule"));
        return new ScheduleSpec(k, Double.parseDouble(m.getOrDefault("gamma", Double.toString(GAMMA))),
                Integer.parseInt(m.getOrDefault("step_size", "0")), parseMilestones(m.getOrDefault("milestones", "")),
                Double.parseDouble(m.getOrDefault("pct_start", Double.toString(PCT_START))),
                Double.parseDouble(m.getOrDefault("div_factor", Double.toString(DIV_FACTOR))),
                Double.parseDouble(m.getOrDefault("final_div_factor", Double.toString(FINAL_DIV_FACTOR))));
    }

    /** "3,6": the CLI's form and the metadata's. */
    public String milestonesText() {
        StringBuilder sb = new StringBuilder();
        for (int x : milestones) sb.append(sb.isEmpty() ? "" : ",").append(x);
        return sb.toString();
    }

    /** "3,6" as {3, 6}; a value that is not a comma list of integers is refused naming it. */
    public static int[] parseMilestones(String s) {
        if (s.isBlank()) return new int[0];
        List<Integer> out = new ArrayList<>();
        for (String p : s.split(",", -1)) {
            try {
                out.add(Integer.parseInt(p.trim()));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("milestones must be a comma list of epochs (e.g. 30,60), got '" + s + "'");
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    /** How the run's header names it: "cosine", "multistep (milestones 3,6, gamma 0.1)", ... */
    public String describe() {
        return switch (kind) {
            case COSINE, LINEAR -> kind.key();
            case STEP -> "step (every " + stepSize + " epoch(s), gamma " + gamma + ")";
            case MULTISTEP -> "multistep (milestones " + milestonesText() + ", gamma " + gamma + ")";
            case EXP -> "exp (gamma " + gamma + " per epoch)";
            case ONECYCLE -> "onecycle (pct_start " + pctStart + ", div_factor " + divFactor + ", final_div_factor " + finalDivFactor + ")";
        };
    }

    // a record's equals compares arrays by identity: by value here (a checkpoint's schedule is checked by equality)
    @Override public boolean equals(Object o) {
        return o instanceof ScheduleSpec s && kind == s.kind && Double.compare(gamma, s.gamma) == 0 && stepSize == s.stepSize
                && Arrays.equals(milestones, s.milestones) && Double.compare(pctStart, s.pctStart) == 0
                && Double.compare(divFactor, s.divFactor) == 0 && Double.compare(finalDivFactor, s.finalDivFactor) == 0;
    }

    @Override public int hashCode() {
        return java.util.Objects.hash(kind, gamma, stepSize, Arrays.hashCode(milestones), pctStart, divFactor, finalDivFactor);
    }

    @Override public int[] milestones() { return milestones.clone(); }

    @Override public String toString() { return describe(); }
}
