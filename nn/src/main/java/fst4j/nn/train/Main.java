package fst4j.nn.train;

import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.SparseConfig.Recipe;
import fst4j.nn.cli.Cli;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.plot.LineChart;
import fst4j.tensor.Blas;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code fst4j train}: trains a fresh model per sparsity method (same seed, same data order) and compares them.
 * Prints progress, per-epoch test accuracy and a final table (test accuracy, median ms per step, share of step time
 * in Eq. 1/2/3, im2col/col2im, sparsification, other); writes metrics.csv, eval.csv, summary.json, loss.png,
 * accuracy.png and a final checkpoint per method under --out. Exit status: 0 done, 1 failure, 2 usage error.
 */
public final class Main {
    private Main() {}

    static final String USAGE = "usage: fst4j train [--model mlp|cnn|resnet-small|resnet18|resnet18-imagenet] [--data fashion-mnist|fashion-mnist:DIR|mnist:DIR|cifar10:DIR]"
            + " [--method dense,fst3_ir,...] [--epochs N] [--batch N] [--optimizer sgd|adamw] [--lr X] [--momentum X] [--wd X] [--nesterov]"
            + " [--betas B1,B2] [--eps X] [--amsgrad] [--no-wd-norm-bias] [--clip-grad-norm X] [--nm N:M] [--accumulate N]"
            + " [--schedule cosine|linear|step|multistep|exp|onecycle] [--gamma X] [--step-size EPOCHS] [--milestones E1,E2,...]"
            + " [--pct-start X] [--div-factor X] [--final-div-factor X] [--warmup STEPS]"
            + " [--smoothing X] [--train-subset N] [--test-subset N] [--augment] [--seed N] [--threads N] [--out DIR]"
            + " [--resume CKPT] [--save-every STEPS] [--no-progress] [--profile-ops] [--device cpu|cuda] [--srste-lambda X] [--flip-rate]";

    static final String HELP = """
            fst4j train: train one model per sparsity method and compare them.
              --model M          mlp, cnn, resnet-small (default), resnet18, resnet18-imagenet
              --data D           fashion-mnist (default: $FST4J_DATA, $FST4J_DATA/fashion-mnist, or where the Debian package
                                 dataset-fashion-mnist installs it), fashion-mnist:DIR, mnist:DIR, cifar10:DIR
              --method A,B,...   comma list of dense, sr_ste, tsm, wg, wx, gg, gx, fst2, fst3, fst3_ir, fst_code,
                                 fst3_ir_patterns, meprop, asp, resprop (default dense,fst3_ir); each may take
                                 the authors' changes on top with '+': +patterns (their four random X^T patterns),
                                 +shift0.03 (their circular 0.03 shift), +wt-from-sw (S(W^T) from S(W)),
                                 e.g. fst3_ir+shift0.03+wt-from-sw
              --nm N:M           prune the weights (S(W), S(W^T)) N:M by magnitude instead of 2:4 (default 2:4):
                                 the N largest |w| of every M, 1 <= N < M <= 32 (1:4, 2:8, 4:8, 1:16), as a dense
                                 GEMM of the masked weights, with SR-STE's decay for that rule; the activation and
                                 gradient masks stay 2:4; dense runs unchanged beside it; tsm, asp, meprop and
                                 resprop refuse it
              --epochs N         epochs (default 1)
              --batch N          batch size (default 128)
              --optimizer O      sgd (default) or adamw (torch.optim.AdamW: decoupled weight decay)
              --lr X             peak learning rate (default 0.1; 1e-3 with adamw), cosine-annealed to 0 after a linear warm-up
              --schedule S       the learning rate over the run, torch.optim.lr_scheduler's value at every step:
                                   cosine    (default) linear warm-up, then cosine annealing to 0
                                   linear    linear warm-up, then a straight line to 0
                                   step      StepLR: times --gamma (default 0.1) every --step-size epochs
                                   multistep MultiStepLR: times --gamma (default 0.1) at each of --milestones E1,E2,...
                                   exp       ExponentialLR: times --gamma every epoch (--gamma required)
                                   onecycle  OneCycleLR with --lr as max_lr, per optimizer step: --pct-start (0.3),
                                             --div-factor (25), --final-div-factor (1e4); cos annealing, no momentum cycling
              --warmup STEPS     warm-up steps of cosine and linear (default 5% of all steps)
              --accumulate N     gradient accumulation: N batches of --batch per optimizer step, each loss scaled by 1/N
                                 (default 1); steps, the progress, metrics.csv's rows and --save-every count optimizer
                                 steps; batch norm normalises each batch of --batch on its own
              --wd X             weight decay (default 5e-4, L2 in SGD's gradient; 1e-2 with adamw, decoupled)
              --momentum X, --nesterov    SGD momentum (0.9), Nesterov (off)
              --betas B1,B2, --eps X, --amsgrad   AdamW's betas (0.9,0.999), eps (1e-8), AMSGrad (off)
              --no-wd-norm-bias  no weight decay on biases and batch norm's parameters (default: on every parameter)
              --clip-grad-norm X clip the gradients' total L2 norm to X after the backward pass, before SR-STE's
                                 decay (torch.nn.utils.clip_grad_norm_; default 0: off); metrics.csv gets a grad_norm
                                 column (the norm before clipping), and a step whose norm is NaN or infinite stops
              --smoothing X      label smoothing (default 0.1)
              --train-subset N   use the first N training images only (default 0: all); --test-subset N likewise
              --augment          random crop and horizontal flip
              --seed N           seed of model init, data order and augmentation (default 0)
              --threads N        native kernel threads (default: all cores; more than the cores only slows the kernels)
              --out DIR          output directory (default runs/<timestamp>); one that holds a run is refused but for
                                 --resume into it
              --resume CKPT      continue the run saved in CKPT (its method and settings; other flags must agree), by
                                 default in CKPT's run folder (OUT of OUT/<method>/checkpoint.safetensors)
              --save-every N     also checkpoint every N steps to OUT/<method>/checkpoint.safetensors
              --no-progress      no live progress bar on a terminal
              --profile-ops      after each run, the measured steps' time per operation (conv geometry, batch norm, ...),
                                 also in OUT/<method>/profile-ops.txt
              --device D         cpu (default) or cuda: model, optimizer and batches on the GPU (see native-cuda/CUDA.md)
              --srste-lambda X   SR-STE's decay lambda (W - S(W)) of the pruned weights (default 2e-4); 0 is the
                                 plain straight-through estimator (sr_ste with 0: S(W) forward, no decay)
              --flip-rate        after every step, the flip rate of the pruned weights' masks (Zhou et al. 2021,
                                 SR-STE, Sec. 4: changed mask entries / weights, over the layers whose W is pruned,
                                 the dense first and last layers not counted): a flip_rate column in metrics.csv
                                 (empty where no layer is pruned: dense, meprop, resprop, asp before its pruning and
                                 at it) and its mean over the last epoch in summary.json; on cuda too (the 2:4
                                 masks' metadata read back, one bit per weight). Not in step_ms; training unchanged
            """;

    private static final Cli.Command COMMAND = new Cli.Command("train", HELP, USAGE,
            List.of(CheckpointException.class, fst4j.shim.CudaUnavailableException.class));   // the latter: --device cuda where there is none

    /** Parsed command line. */
    record Options(String model, String data, List<Recipe> methods, Integer epochs, Integer batch, Double lr, Double momentum,
                   Double wd, boolean nesterov, Integer warmup, Double smoothing, Integer trainSubset, Integer testSubset,
                   boolean augment, Long seed, Integer threads, Path out, Path resume, int saveEvery, boolean progress,
                   fst4j.tensor.Device device, boolean profileOps, TrainConfig.OptimizerKind optimizer, double[] betas, Double eps,
                   boolean amsgrad, boolean noWdNormBias, Double clipGradNorm, fst4j.sparse.NM nm, ScheduleSpec.Kind schedule, Double gamma,
                   Integer stepSize, int[] milestones, Double pctStart, Double divFactor, Double finalDivFactor, Integer accumulate,
                   Double srSteLambda, boolean flipRate) {}

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    /** Runs the CLI; returns the exit status. */
    public static int run(String[] args, PrintStream out, PrintStream err) { return run(args, out, err, TrainData::load); }

    static int run(String[] args, PrintStream out, PrintStream err, DataSource source) {
        return COMMAND.run(args, out, err, () -> new Main.Run(parse(args), out, err, source).execute());
    }

    static Options parse(String[] args) throws UsageException {
        Map<String, String> v = new LinkedHashMap<>();
        List<String> bools = List.of("--nesterov", "--augment", "--no-progress", "--profile-ops", "--amsgrad", "--no-wd-norm-bias", "--flip-rate");
        List<String> valued = List.of("--model", "--data", "--method", "--epochs", "--batch", "--lr", "--momentum", "--wd",
                "--warmup", "--smoothing", "--train-subset", "--test-subset", "--seed", "--threads", "--out", "--resume", "--save-every",
                "--device", "--optimizer", "--betas", "--eps", "--clip-grad-norm", "--nm", "--schedule", "--gamma", "--step-size", "--milestones",
                "--pct-start", "--div-factor", "--final-div-factor", "--accumulate", "--srste-lambda");
        for (int i = 0; i < args.length; i++) {
            String a = args[i], val = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) { val = a.substring(eq + 1); a = a.substring(0, eq); }
            if (bools.contains(a)) {
                if (val != null) throw new UsageException(a + " takes no value");
                v.put(a, "true");
            } else if (valued.contains(a)) {
                if (val == null) {
                    if (i + 1 >= args.length || args[i + 1].startsWith("--")) throw new UsageException(a + " needs a value");
                    val = args[++i];
                }
                // an empty value (an unset shell variable) is no value: --out "" wrote the run into the current directory
                if (val.isBlank()) throw new UsageException(a + " needs a value, got '" + val + "'");
                if (v.put(a, val) != null) throw new UsageException(a + " given twice");
            } else {
                throw new UsageException(a.startsWith("-") ? "unknown flag " + a : "unexpected argument '" + a + "'");
            }
        }
        List<Recipe> methods = null;
        if (v.containsKey("--method")) {
            methods = new ArrayList<>();
            for (String m : v.get("--method").split(",", -1)) {
                if (m.isBlank()) throw new UsageException("--method has an empty entry in '" + v.get("--method") + "'");
                try {
                    Recipe mm = Recipe.parse(m);
                    if (methods.contains(mm)) throw new UsageException("method " + m + " given twice");
                    methods.add(mm);
                } catch (IllegalArgumentException e) {
                    throw new UsageException(e.getMessage());
                }
            }
            if (methods.isEmpty()) throw new UsageException("--method is empty");
        }
        String model = v.get("--model");
        if (model != null && !List.of("mlp", "cnn", "small-cnn", "resnet-small", "resnet18", "resnet18-imagenet").contains(model.toLowerCase(Locale.ROOT)))
            throw new UsageException("unknown model '" + model + "'");
        Integer saveEvery = posInt(v, "--save-every", true);
        fst4j.tensor.Device device = fst4j.tensor.Device.CPU;
        if (v.containsKey("--device")) {
            String d = v.get("--device").toLowerCase(Locale.ROOT);
            if (!d.equals("cpu") && !d.equals("cuda")) throw new UsageException("unknown device '" + v.get("--device") + "' (cpu, cuda)");
            device = d.equals("cuda") ? fst4j.tensor.Device.CUDA : fst4j.tensor.Device.CPU;
        }
        TrainConfig.OptimizerKind optimizer = null;
        if (v.containsKey("--optimizer")) {
            try {
                optimizer = TrainConfig.OptimizerKind.parse(v.get("--optimizer"));
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
        }
        double[] betas = null;
        if (v.containsKey("--betas")) {
            String[] b = v.get("--betas").split(",");
            try {
                if (b.length != 2) throw new NumberFormatException();
                betas = new double[]{Double.parseDouble(b[0].trim()), Double.parseDouble(b[1].trim())};
                if (!(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1)) throw new NumberFormatException();
            } catch (NumberFormatException e) {
                throw new UsageException("--betas needs two numbers in [0, 1) as B1,B2 (e.g. 0.9,0.999), got '" + v.get("--betas") + "'");
            }
        }
        fst4j.sparse.NM nm = null;
        if (v.containsKey("--nm")) {
            try {
                nm = fst4j.sparse.NM.parse(v.get("--nm"));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--nm: " + e.getMessage());
            }
        }
        ScheduleSpec.Kind schedule = null;
        if (v.containsKey("--schedule")) {
            try {
                schedule = ScheduleSpec.Kind.parse(v.get("--schedule"));
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
        }
        int[] milestones = null;
        if (v.containsKey("--milestones")) {
            try {
                milestones = ScheduleSpec.parseMilestones(v.get("--milestones"));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--" + e.getMessage());
            }
        }
        // flags of the other optimizer would be silently ignored
        boolean adamw = optimizer == TrainConfig.OptimizerKind.ADAMW;
        for (String f : List.of("--betas", "--eps", "--amsgrad"))
            if (v.containsKey(f) && optimizer != null && !adamw) throw new UsageException(f + " is AdamW's; --optimizer " + optimizer.key() + " does not take it");
        for (String f : List.of("--momentum", "--nesterov"))
            if (v.containsKey(f) && adamw) throw new UsageException(f + " is SGD's; AdamW takes --betas B1,B2 (and --eps, --amsgrad)");
        return new Options(model, v.get("--data"), methods, posInt(v, "--epochs", false), posInt(v, "--batch", false),
                posDouble(v, "--lr", false), posDouble(v, "--momentum", true), posDouble(v, "--wd", true), v.containsKey("--nesterov"),
                posInt(v, "--warmup", true), posDouble(v, "--smoothing", true), posInt(v, "--train-subset", true),
                posInt(v, "--test-subset", true), v.containsKey("--augment"), longOf(v, "--seed"), posInt(v, "--threads", false),
                v.containsKey("--out") ? Path.of(v.get("--out")) : null, v.containsKey("--resume") ? Path.of(v.get("--resume")) : null,
                saveEvery == null ? 0 : saveEvery, !v.containsKey("--no-progress"), device, v.containsKey("--profile-ops"),
                optimizer, betas, posDouble(v, "--eps", true), v.containsKey("--amsgrad"), v.containsKey("--no-wd-norm-bias"),
                posDouble(v, "--clip-grad-norm", true), nm, schedule, posDouble(v, "--gamma", false), posInt(v, "--step-size", false), milestones,
                posDouble(v, "--pct-start", true), posDouble(v, "--div-factor", false), posDouble(v, "--final-div-factor", false),
                posInt(v, "--accumulate", false), posDouble(v, "--srste-lambda", true), v.containsKey("--flip-rate"));
    }

    private static Integer posInt(Map<String, String> v, String k, boolean zeroOk) throws UsageException {
        String s = v.get(k);
        if (s == null) return null;
        try {
            int x = Integer.parseInt(s.trim().replace("_", ""));
            if (x < 0 || (x == 0 && !zeroOk)) throw new NumberFormatException();
            return x;
        } catch (NumberFormatException e) {
            throw new UsageException(k + " needs a " + (zeroOk ? "non-negative" : "positive") + " integer, got '" + s + "'");
        }
    }

    private static Double posDouble(Map<String, String> v, String k, boolean zeroOk) throws UsageException {
        String s = v.get(k);
        if (s == null) return null;
        try {
            double x = Double.parseDouble(s.trim());
            if (!Double.isFinite(x) || x < 0 || (x == 0 && !zeroOk)) throw new NumberFormatException();
            return x;
        } catch (NumberFormatException e) {
            throw new UsageException(k + " needs a " + (zeroOk ? "non-negative" : "positive") + " number, got '" + s + "'");
        }
    }

    private static Long longOf(Map<String, String> v, String k) throws UsageException {
        String s = v.get(k);
        if (s == null) return null;
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(k + " needs an integer, got '" + s + "'");
        }
    }

    /**
     * c at the --nm pattern (null: as it is): the dense baseline runs unchanged beside the pruned methods, which take the
     * pattern, and a method that prunes no weight by magnitude refuses any pattern but 2:4.
     */
    static TrainConfig withNm(TrainConfig c, fst4j.sparse.NM nm) throws UsageException {
        if (nm == null || nm.isTwoFour() || c.method() == Method.DENSE) return c;
        String why = c.method().whyNoPattern();
        if (why != null)
            throw new UsageException("--nm " + nm + " has no meaning for " + c.methodName() + ": " + why + " (only dense runs unchanged beside a pattern)");
        return c.withNm(nm);
    }

    /** The flags applied over a base config. */
    static TrainConfig apply(Options o, TrainConfig c) throws UsageException {
        try {
            return applyChecked(o, c);
        } catch (IllegalArgumentException e) {   // a value the flags' own checks let through (--smoothing 1): still a usage error
            throw new UsageException(e.getMessage());
        }
    }

    private static TrainConfig applyChecked(Options o, TrainConfig c) {
        // switching to AdamW takes torch's defaults (SGD's lr 0.1 would diverge); the flags below override them
        if (o.optimizer() == TrainConfig.OptimizerKind.ADAMW && c.optimizer() != TrainConfig.OptimizerKind.ADAMW) c = c.withAdamWDefaults();
        else if (o.optimizer() != null) c = c.withOptimizer(o.optimizer());
        if (c.optimizer() != TrainConfig.OptimizerKind.ADAMW && (o.betas() != null || o.eps() != null || o.amsgrad()))
            throw new IllegalArgumentException("--betas, --eps and --amsgrad are AdamW's; this run's optimizer is " + c.optimizer().key());
        if (c.optimizer() == TrainConfig.OptimizerKind.ADAMW && (o.momentum() != null || o.nesterov()))
            throw new IllegalArgumentException("--momentum and --nesterov are SGD's; this run's optimizer is adamw");
        if (o.betas() != null || o.eps() != null || o.amsgrad()) {
            var a = c.adamW();
            c = c.withAdamW(new TrainConfig.AdamWSettings(o.betas() != null ? o.betas()[0] : a.beta1(), o.betas() != null ? o.betas()[1] : a.beta2(),
                    o.eps() != null ? o.eps() : a.eps(), o.amsgrad() || a.amsgrad()));
        }
        if (o.noWdNormBias()) c = c.withWdOnNormAndBias(false);
        if (o.model() != null) c = c.withModel(o.model().toLowerCase(Locale.ROOT));
        if (o.epochs() != null) c = c.withEpochs(o.epochs());
        if (o.batch() != null) c = c.withBatchSize(o.batch());
        if (o.lr() != null) c = c.withLr(o.lr());
        if (o.momentum() != null) c = c.withMomentum(o.momentum());
        if (o.wd() != null) c = c.withWeightDecay(o.wd());
        if (o.nesterov()) c = c.withNesterov(true);
        if (o.warmup() != null) c = c.withWarmupSteps(o.warmup());
        if (o.smoothing() != null) c = c.withLabelSmoothing(o.smoothing());
        if (o.trainSubset() != null || o.testSubset() != null)
            c = c.withSubsets(o.trainSubset() != null ? o.trainSubset() : c.trainSubset(), o.testSubset() != null ? o.testSubset() : c.testSubset());
        if (o.augment()) c = c.withAugment(true);
        if (o.seed() != null) c = c.withSeed(o.seed());
        if (o.clipGradNorm() != null) c = c.withClipGradNorm(o.clipGradNorm());
        if (o.accumulate() != null) c = c.withAccumulate(o.accumulate());
        if (o.srSteLambda() != null) c = c.withSrSteLambda(o.srSteLambda());
        return withSchedule(o, c);
    }

    /** The schedule flags over c's schedule: --schedule picks the kind (else c's), the parameter flags must be its. */
    private static TrainConfig withSchedule(Options o, TrainConfig c) {
        ScheduleSpec old = c.schedule();
        ScheduleSpec.Kind k = o.schedule() != null ? o.schedule() : old.kind();
        // a flag of another schedule would be silently ignored
        record Flag(String name, boolean given, List<ScheduleSpec.Kind> kinds) {}
        List<Flag> flags = List.of(
                new Flag("--gamma", o.gamma() != null, List.of(ScheduleSpec.Kind.STEP, ScheduleSpec.Kind.MULTISTEP, ScheduleSpec.Kind.EXP)),
                new Flag("--step-size", o.stepSize() != null, List.of(ScheduleSpec.Kind.STEP)),
                new Flag("--milestones", o.milestones() != null, List.of(ScheduleSpec.Kind.MULTISTEP)),
                new Flag("--pct-start", o.pctStart() != null, List.of(ScheduleSpec.Kind.ONECYCLE)),
                new Flag("--div-factor", o.divFactor() != null, List.of(ScheduleSpec.Kind.ONECYCLE)),
                new Flag("--final-div-factor", o.finalDivFactor() != null, List.of(ScheduleSpec.Kind.ONECYCLE)),
                new Flag("--warmup", o.warmup() != null, List.of(ScheduleSpec.Kind.COSINE, ScheduleSpec.Kind.LINEAR)));
        boolean any = false;
        for (Flag f : flags) {
            if (f.given() && !f.kinds().contains(k))
                throw new IllegalArgumentException(f.name() + " is " + String.join(", ", f.kinds().stream().map(x -> x.key() + "'s").toList())
                        + "; --schedule " + k.key() + " does not take it");
            any |= f.given() && f != flags.get(flags.size() - 1);
        }
        if (o.schedule() == null && !any) return c;
        ScheduleSpec base = k == old.kind() ? old : null;   // another kind starts from torch's defaults
        double gamma = o.gamma() != null ? o.gamma() : base != null ? base.gamma() : ScheduleSpec.GAMMA;
        ScheduleSpec spec = switch (k) {
            case COSINE -> ScheduleSpec.cosine();
            case LINEAR -> ScheduleSpec.linear();
            case STEP -> {
                Integer size = o.stepSize() != null ? o.stepSize() : base != null ? Integer.valueOf(base.stepSize()) : null;
                if (size == null) throw new IllegalArgumentException("--schedule step needs --step-size EPOCHS (StepLR's step_size)");
                yield ScheduleSpec.step(size, gamma);
            }
            case MULTISTEP -> {
                int[] m = o.milestones() != null ? o.milestones() : base != null ? base.milestones() : null;
                if (m == null) throw new IllegalArgumentException("--schedule multistep needs --milestones E1,E2,... (epochs, MultiStepLR's milestones)");
                try {
                    yield ScheduleSpec.multiStep(m, gamma);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--milestones: " + e.getMessage());
                }
            }
            case EXP -> {
                if (o.gamma() == null && base == null) throw new IllegalArgumentException("--schedule exp needs --gamma X (ExponentialLR's factor per epoch)");
                yield ScheduleSpec.exponential(gamma);
            }
            case ONECYCLE -> {
                ScheduleSpec b = base != null ? base : ScheduleSpec.oneCycle(ScheduleSpec.PCT_START, ScheduleSpec.DIV_FACTOR, ScheduleSpec.FINAL_DIV_FACTOR);
                try {
                    yield ScheduleSpec.oneCycle(o.pctStart() != null ? o.pctStart() : b.pctStart(), o.divFactor() != null ? o.divFactor() : b.divFactor(),
                            o.finalDivFactor() != null ? o.finalDivFactor() : b.finalDivFactor());
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--schedule onecycle: " + e.getMessage());
                }
            }
        };
        return c.withSchedule(spec);
    }

    /**
     * What one method's run produced. stopped: why the run ended early (a NaN loss or gradient norm), else null;
     * checkpoint is then null (no final weights written); notFinite: what was not finite ("the loss"), else null;
     * flipRate: the mean of the masks' flip rates over the last epoch's steps this process trained (the stopped epoch's
     * so far), NaN where not measured or where no step had one.
     */
    record Result(TrainConfig cfg, double testAcc, double testLoss, double trainLoss, double trainAcc, double medianStepMs,
                  long measuredSteps, Map<String, Double> shares, long steps, double wallSeconds, long params, Path checkpoint,
                  String stopped, String notFinite, double flipRate) {}

    /**
     * metrics.csv's header; a run that clips adds the gradients' norm before clipping as an eighth column, a run that
     * measures the masks' flip rate (--flip-rate) a flip_rate column after it (or after step_ms).
     */
    static final String METRICS = "method,epoch,step,loss,train_acc,lr,step_ms";

    /** The optional columns a metrics.csv has, in this order after METRICS's: grad_norm, flip_rate. */
    record Columns(boolean gradNorm, boolean flipRate) {
        String header() { return METRICS + (gradNorm ? ",grad_norm" : "") + (flipRate ? ",flip_rate" : ""); }
        int width() { return METRICS.split(",").length + (gradNorm ? 1 : 0) + (flipRate ? 1 : 0); }
    }

    /**
     * The running sums of an epoch's train loss, accuracy and flip rate up to a --save-every checkpoint, kept in its
     * metadata, so that the epoch's line and summary.json after a resume cover all its steps (not only those trained after
     * the resume). Doubles as Double.toString (exact). A checkpoint without them (written before they were kept) gives null.
     */
    record EpochSums(double lossSum, long correct, long seen, double flipSum, long flipSteps) {
        /** An epoch's start. */
        static final EpochSums NONE = new EpochSums(0, 0, 0, 0, 0);

        Map<String, String> metadata() {
            return Map.of("epoch_loss_sum", Double.toString(lossSum), "epoch_correct", Long.toString(correct), "epoch_seen", Long.toString(seen),
                    "epoch_flip_sum", Double.toString(flipSum), "epoch_flip_steps", Long.toString(flipSteps));
        }

        static EpochSums of(Map<String, String> meta) {
            if (!meta.containsKey("epoch_seen")) return null;
            try {
                return new EpochSums(Double.parseDouble(meta.get("epoch_loss_sum")), Long.parseLong(meta.get("epoch_correct")),
                        Long.parseLong(meta.get("epoch_seen")), Double.parseDouble(meta.get("epoch_flip_sum")), Long.parseLong(meta.get("epoch_flip_steps")));
            } catch (RuntimeException e) {   // NumberFormatException, or a key missing (null)
                throw new IllegalArgumentException("the checkpoint's epoch sums (epoch_loss_sum, epoch_correct, ...) do not parse: " + e.getMessage(), e);
            }
        }
    }

    /** One invocation: all methods, the shared outputs. */
    static final class Run {
        private final Options o;
        private final PrintStream out, err;
        private final DataSource source;
        private final boolean tty;
        private Path dir;
        private BufferedWriter metrics, evals;
        /** Whether the run clips its gradients: metrics.csv then has a grad_norm column. */
        private boolean clipping;
        /**
         * The optional columns of this run's metrics.csv: grad_norm where it clips, flip_rate where it measures the flip
         * rate, or either where it continues a file that has it (its rows then leave the cell empty), so that every row has
         * its file's header's columns.
         */
        private Columns columns;
        private final Map<String, List<double[]>> lossCurves = new LinkedHashMap<>(), accCurves = new LinkedHashMap<>(), testCurves = new LinkedHashMap<>();
        /** Where training stands, for the interruption's message (read by the shutdown hook's thread). */
        private volatile String current;
        private volatile long currentStep, currentTotal, lastCkptStep;
        private volatile Path lastCkpt;
        private volatile boolean finished;

        Run(Options o, PrintStream out, PrintStream err, DataSource source) {
            this.o = o;
            this.source = source;
            this.out = out;
            this.err = err;
            var con = System.console();
            this.tty = o.progress() && con != null && con.isTerminal();
        }

        int execute() throws UsageException, IOException {
            List<TrainConfig> cfgs = new ArrayList<>();
            String dataSpec = o.data() != null ? o.data() : "fashion-mnist";
            if (o.resume() != null) {
                TrainConfig saved = Trainer.readConfig(o.resume());
                if (o.data() == null) dataSpec = Trainer.readMetadata(o.resume()).getOrDefault("data", dataSpec);
                // a dense run takes --nm and stays dense (withNm), so its resume does too
                if (o.nm() != null && saved.method() != Method.DENSE && !o.nm().equals(saved.nm()))
                    throw new UsageException("--resume continues the checkpoint's N:M pattern " + saved.nm() + " (" + saved.methodName()
                            + "); --nm must be that or left out, got " + o.nm());
                TrainConfig wanted = apply(o, saved);
                if (o.methods() != null && !(o.methods().size() == 1 && o.methods().get(0).equals(saved.recipe())))
                    throw new UsageException("--resume continues the checkpoint's method " + saved.methodName() + "; --method must be that or left out");
                if (!wanted.equals(saved)) {
                    Map<String, String> was = saved.toMetadata(), now = wanted.toMetadata();
                    List<String> diff = new ArrayList<>();
                    java.util.Set<String> keys = new java.util.LinkedHashSet<>(was.keySet());
                    keys.addAll(now.keySet());   // a setting at its default is left out of the metadata: absent on one side
                    for (String k : keys)
                        if (!java.util.Objects.equals(was.get(k), now.get(k)))
                            diff.add(k + ": " + now.getOrDefault(k, "default") + " against the checkpoint's " + was.getOrDefault(k, "default"));
                    if (diff.isEmpty()) diff.add(String.valueOf(wanted));   // unreachable while toMetadata names every setting
                    throw new UsageException("--resume continues the checkpoint's settings; these flags differ from them: " + String.join(", ", diff)
                            + "; leave them out or give the checkpoint's values");
                }
                cfgs.add(saved);
            } else {
                TrainConfig base = apply(o, TrainConfig.defaults(Method.DENSE));
                for (Recipe m : o.methods() != null ? o.methods() : List.of(Recipe.of(Method.DENSE), Recipe.of(Method.FST3_IR)))
                    cfgs.add(withNm(base.withRecipe(m), o.nm()));
            }
            if (o.threads() != null) Blas.setThreads(o.threads());
            TrainData data = source.load(dataSpec);
            for (TrainConfig c : cfgs) {   // before any output exists: a run that cannot take one step leaves no files behind
                int n = used(c.trainSubset(), data.train());
                if (n < c.batchSize())
                    throw new UsageException("the training set has " + n + " images, fewer than one batch of " + c.batchSize());
                if (n / c.batchSize() < c.accumulate())
                    throw new UsageException("--accumulate " + c.accumulate() + " takes " + c.accumulate() + " batches of " + c.batchSize()
                            + " per optimizer step; the training set of " + n + " images gives " + n / c.batchSize() + " an epoch");
            }
            clipping = cfgs.get(0).clipsGradients();   // one config but for the method: all clip or none
            columns = new Columns(clipping, o.flipRate());
            // a resume without --out continues in the checkpoint's own run folder (OUT/<method>/checkpoint.safetensors), where
            // its metrics and summary are; a checkpoint elsewhere starts a new folder
            Path runOf = o.resume() == null ? null : runFolder(o.resume(), cfgs.get(0).methodName());
            dir = o.out() != null ? o.out() : runOf != null ? runOf
                    : Path.of("runs", LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
            // a resumed run appends to the folder's metrics.csv: one whose columns are not train's is refused before any
            // training (its rows are conformed to one header once the checkpoint has loaded: continueCsvs)
            if (o.resume() != null && Files.isRegularFile(dir.resolve("metrics.csv"))) {
                try {
                    metricsColumns(dir.resolve("metrics.csv"));
                } catch (IOException e) {
                    throw new UsageException(e.getMessage() + "; resume into another --out");
                }
            }
            // a new run into a folder that holds one would replace its metrics, evaluations, summary and charts (its other
            // methods' checkpoints left without a record): refused before anything is written
            if (o.resume() == null)
                for (String f : List.of("metrics.csv", "summary.json", "eval.csv"))
                    if (holdsRows(dir.resolve(f)))
                        throw new UsageException("--out " + dir + " already holds a run (" + f + "); a new run there would replace its results:"
                                + " give another --out, or --resume one of its checkpoints into it");
            Files.createDirectories(dir);
            // every method's folder must take files before hours of training end in a refused checkpoint write
            for (TrainConfig c : cfgs) {
                Path md = dir.resolve(c.methodName());
                Files.createDirectories(md);
                Path probe = fst4j.nn.io.IoText.sibling(md.resolve("write-test"), "");
                try {
                    Files.createFile(probe);
                } catch (IOException e) {
                    throw new IOException("cannot write the checkpoints into " + md + ": " + fst4j.nn.io.IoText.reason(e), e);
                } finally {
                    Files.deleteIfExists(probe);
                }
            }
            if (o.threads() != null && o.threads() > Runtime.getRuntime().availableProcessors())
                err.println("fst4j train: --threads " + o.threads() + " is more than the " + Runtime.getRuntime().availableProcessors()
                        + " CPUs here: the kernels' threads will take turns on them (slower, same results)");
            TrainConfig c0 = cfgs.get(0);
            fst4j.sparse.NM pattern = cfgs.stream().map(TrainConfig::nm).filter(p -> !p.isTwoFour()).findFirst().orElse(null);
            // the accumulation and a schedule other than cosine are named; a run with neither prints the line it printed before
            out.printf(Locale.ROOT, "fst4j train: %s on %s (%d train / %d test images), %d epoch(s), batch %d%s, %s lr %s%s wd %s%s%s%s, seed %d, %d thread(s); output in %s%n",
                    c0.model(), data.spec(), used(c0.trainSubset(), data.train()), used(c0.testSubset(), data.test()),
                    c0.epochs(), c0.batchSize(), c0.accumulate() > 1 ? " x " + c0.accumulate() + " accumulated (" + c0.batchSize() * c0.accumulate()
                            + " per optimizer step)" : "", c0.optimizer().key(), plain(c0.lr()),
                    c0.schedule().kind() != ScheduleSpec.Kind.COSINE ? " (" + c0.schedule().describe() + ")" : "",
                    plain(c0.weightDecay()), c0.wdOnNormAndBias() ? "" : " (not on biases and norms)",
                    c0.clipsGradients() ? ", gradient norm clipped to " + plain(c0.clipGradNorm()) : "",
                    pattern != null ? ", weights pruned " + pattern + " (not 2:4)" : "", c0.seed(), Blas.threads(), dir);
            List<Result> results = new ArrayList<>();
            long t0 = System.nanoTime();
            // a run resumed into its own folder opens its CSVs once the checkpoint has loaded (train): the rows it trains
            // again are dropped from them first, and a checkpoint that is refused leaves them as they were
            boolean append = o.resume() != null && Files.exists(dir.resolve("metrics.csv"));
            // an interrupted run (Ctrl-C) says what it leaves and how to go on, where before it ended without a word
            Thread hook = new Thread(() -> interrupted(results), "fst4j-train-interrupted");
            Runtime.getRuntime().addShutdownHook(hook);
            try {
                if (!append) openCsvs(false);
                for (TrainConfig c : cfgs) {
                    results.add(train(c, data));
                    // each finished method is in summary.json at once: an interruption of the next keeps it, and a resume
                    // of the next into this folder merges with it
                    if (results.size() < cfgs.size()) writeSummary(results, data, (System.nanoTime() - t0) / 1e9);
                }
            } finally {
                finished = true;
                try { Runtime.getRuntime().removeShutdownHook(hook); } catch (IllegalStateException shuttingDown) { /* the hook runs */ }
                closeCsvs();
            }
            double wall = (System.nanoTime() - t0) / 1e9;
            table(results, wall);
            if (o.flipRate())
                out.println("flip rate of the pruned weights' masks (changed entries / weights per step, Zhou et al. 2021), mean over the last epoch: "
                        + String.join(", ", results.stream().map(r -> r.cfg().methodName() + " " + (Double.isFinite(r.flipRate())
                        ? String.format(Locale.ROOT, "%.4g", r.flipRate())
                        : r.measuredSteps() == 0 && Double.isNaN(r.trainLoss()) ? "- (no step trained here)" : "- (no pruned layer)")).toList()));
            writeSummary(results, data, wall);
            String noPlots = fst4j.nn.plot.Plots.why();
            if (noPlots == null) plots();
            else out.println("loss.png and accuracy.png skipped: " + noPlots + "; metrics.csv and eval.csv hold the curves");
            List<String> stopped = results.stream().filter(r -> r.stopped() != null).map(r -> r.cfg().methodName()).toList();
            out.println("wrote " + dir.resolve("metrics.csv") + ", eval.csv, summary.json, " + (noPlots == null ? "loss.png, accuracy.png " : "")
                    + "and <method>/final.safetensors" + (stopped.isEmpty() ? "" : " (none for a stopped method)"));
            if (!stopped.isEmpty()) {
                String what = String.join(" or ", results.stream().filter(r -> r.stopped() != null).map(Result::notFinite).distinct().toList());
                err.println("fst4j train: " + String.join(", ", stopped) + " stopped early: " + what + " was not finite (details above; no final"
                        + " checkpoint for " + (stopped.size() == 1 ? "it" : "them") + ")");
                return 1;
            }
            return 0;
        }

        /** The shutdown hook's message: what an interrupted run leaves and how to continue it. */
        private void interrupted(List<Result> done) {
            if (finished || current == null) return;
            StringBuilder m = new StringBuilder("\nfst4j train: interrupted in " + current + " at step " + currentStep + "/" + currentTotal);
            List<String> before = done.stream().map(r -> r.cfg().methodName()).filter(n -> !n.equals(current)).toList();
            if (!before.isEmpty()) m.append("; finished before it: ").append(String.join(", ", before)).append(" (in ").append(dir.resolve("summary.json")).append(")");
            if (lastCkpt != null)
                m.append("; its checkpoint of step ").append(lastCkptStep).append(" continues with: ./fst4j train --resume ").append(lastCkpt)
                        .append(" --out ").append(dir);
            else m.append("; no checkpoint of it was saved (--save-every N keeps one every N steps)");
            err.println(m);
            err.flush();
        }

        /** The run folder a checkpoint lies in (OUT where it is OUT/method/NAME and OUT has the run's metrics.csv), or null. */
        static Path runFolder(Path ckpt, String method) {
            Path parent = ckpt.toAbsolutePath().normalize().getParent();
            if (parent == null || parent.getFileName() == null || !parent.getFileName().toString().equals(method)) return null;
            Path out = parent.getParent();
            return out != null && Files.isRegularFile(out.resolve("metrics.csv")) ? out : null;
        }

        /** Whether f exists with more than a header (a run that failed before its first step leaves header-only CSVs). */
        private static boolean holdsRows(Path f) throws IOException {
            if (!Files.exists(f)) return false;
            if (!Files.isRegularFile(f) || f.getFileName().toString().endsWith(".json")) return true;
            try (var lines = Files.lines(f, java.nio.charset.StandardCharsets.ISO_8859_1)) { return lines.limit(2).count() > 1; }
        }

        /** x as written by hand: 0.0005, not Double.toString's 5.0E-4 */
        private static String plain(double x) {
            if (!Double.isFinite(x) || Math.abs(x) >= 1e6) return Double.toString(x);   // 1e30 as 1.0E30, not 31 digits
            return new java.math.BigDecimal(Double.toString(x)).stripTrailingZeros().toPlainString();
        }

        /** A loss to 4 decimals, or to 4 significant digits past a million (a diverging run's 4.2e36 printed 37 digits and broke the table). */
        static String loss4(double x) {
            return Math.abs(x) < 1e6 || !Double.isFinite(x) ? String.format(Locale.ROOT, "%.4f", x) : String.format(Locale.ROOT, "%.4g", x);
        }

        /** The images a run takes from d: its first subset ones (TrainData.subsets), all where subset is 0. */
        private static int used(int subset, fst4j.nn.data.ImageDataset d) { return subset > 0 ? Math.min(subset, d.size()) : d.size(); }

        private static BufferedWriter open(Path p, boolean append, String header) throws IOException {
            boolean empty = append && Files.size(p) == 0;   // a run killed before its first flush left no header
            BufferedWriter w = append ? Files.newBufferedWriter(p, java.nio.file.StandardOpenOption.APPEND) : Files.newBufferedWriter(p);
            if (!append || empty) { w.write(header); w.newLine(); }
            return w;
        }

        private void openCsvs(boolean append) throws IOException {
            // a run that clips adds the gradients' norm before clipping; the columns of one that does not stay as they were
            metrics = open(dir.resolve("metrics.csv"), append, columns.header());
            Path ev = dir.resolve("eval.csv");
            evals = open(ev, append && Files.exists(ev), "method,epoch,step,test_acc,test_loss");
        }

        private void closeCsvs() throws IOException {
            try {
                if (metrics != null) metrics.close();
            } finally {
                if (evals != null) evals.close();
                metrics = evals = null;
            }
        }

        /**
         * A run resumed into its own folder continues its CSVs as the uninterrupted run would have written them: the
         * resumed method's rows that this run writes again are dropped first (the other methods' rows stay in place),
         * then the charts read what is left. Those are the training rows past the checkpoint's step and the evaluations
         * of the checkpoint's epoch (0-based epoch) on: a checkpoint at an epoch's last step resumes into that epoch's
         * end and evaluates it again, at the checkpoint's own step.
         */
        private void continueCsvs(String name, long at, int epoch) throws IOException {
            String cut = dropRows(dir.resolve("metrics.csv"), name, f -> Long.parseLong(f[2]) > at);   // method,epoch,step,...
            if (cut != null) err.println("fst4j train: " + cut);
            columns = conformMetrics(dir.resolve("metrics.csv"), clipping, o.flipRate());
            Path ev = dir.resolve("eval.csv");
            if (Files.isRegularFile(ev) && (cut = dropRows(ev, name, f -> Integer.parseInt(f[1]) > epoch)) != null)   // method,epoch (1-based),step,...
                err.println("fst4j train: " + cut);
            earlierCurves();
            openCsvs(true);
        }

        /**
         * The optional columns metrics.csv's header has (grad_norm, flip_rate); an empty file (a run killed before its
         * first flush) has none yet. A first line that is none of train's headers is refused: appending this run's rows
         * under it would make a file of two schemas.
         */
        static Columns metricsColumns(Path csv) throws IOException {
            String header;
            try (var r = Files.newBufferedReader(csv, java.nio.charset.StandardCharsets.ISO_8859_1)) {
                header = r.readLine();
            }
            if (header == null || header.isEmpty()) return new Columns(false, false);
            for (Columns c : List.of(new Columns(false, false), new Columns(true, false), new Columns(false, true), new Columns(true, true)))
                if (header.equals(c.header())) return c;
            throw new IOException(csv + " begins '" + (header.length() > 120 ? header.substring(0, 120) + "..." : header)
                    + "', not fst4j train's header (" + METRICS + ", with ,grad_norm where the run clips and ,flip_rate where it measures the flip rate)");
        }

        /**
         * Makes every row of a resumed run's metrics.csv match one header before this run appends to it, and returns
         * that header's optional columns (what this run's rows must then write). grad_norm is there where the file has
         * it, where this run clips (a file of a run without clipping gains it: its rows get an empty cell, as the rows
         * of this run will where it does not clip), or where a row already has an eighth cell under a header without
         * flip_rate (the files of two schemas that appending across a change of --clip-grad-norm wrote before);
         * flip_rate where the file has it or this run measures it (--flip-rate; earlier rows get an empty cell); else the
         * file stays as it is. Rewritten as dropRows does: atomically, bytes kept. A row without its line end (cut short
         * by a killed run: dropRows drops it first) or of another width is refused, naming the file and the line: padding
         * a cut row that happens to end after seven cells would make a truncated number look like a whole row.
         */
        static Columns conformMetrics(Path csv, boolean clipping, boolean flipRate) throws IOException {
            Columns has = metricsColumns(csv);
            String text = Files.readString(csv, java.nio.charset.StandardCharsets.ISO_8859_1);
            List<String> lines = text.lines().toList();
            if (lines.isEmpty() || lines.get(0).isEmpty()) return new Columns(clipping, flipRate);   // no header yet: openCsvs writes this run's
            int narrow = METRICS.split(",").length;
            if (!text.endsWith("\n") && !text.endsWith("\r"))
                throw new IOException(csv + " line " + lines.size() + " '" + clip(lines.getLast()) + "' has no line end: a row cut short by a killed run");
            boolean eighth = false;   // a row with a grad_norm cell its header does not name (the two-schema files)
            for (int i = 1; i < lines.size(); i++) {
                int cells = lines.get(i).split(",", -1).length;
                // a file without flip_rate was written by runs before it or without it: rows of 7 or 8 cells, as always
                boolean ok = has.flipRate() ? cells == has.width() : cells == narrow || cells == narrow + 1;
                if (!ok)
                    throw new IOException(csv + " line " + (i + 1) + " '" + clip(lines.get(i)) + "' has " + cells + " cells, not the header's "
                            + (has.flipRate() ? has.width() + " (" + has.header() + ")" : narrow + " (" + (narrow + 1) + " with grad_norm)")
                            + ": delete or repair it to resume into this folder");
                eighth |= !has.flipRate() && cells == narrow + 1;
            }
            Columns want = new Columns(has.gradNorm() || clipping || eighth, has.flipRate() || flipRate);
            List<String> out = new ArrayList<>(lines.size());
            out.add(want.header());
            boolean changed = !want.equals(has);
            for (String line : lines.subList(1, lines.size())) {
                String[] f = line.split(",", -1);
                // the cells by name: the seven of METRICS, then each optional column the row has, else an empty cell
                String norm = has.flipRate() ? (has.gradNorm() ? f[narrow] : "") : f.length > narrow ? f[narrow] : "";
                String flip = has.flipRate() ? f[f.length - 1] : "";
                StringBuilder row = new StringBuilder(String.join(",", java.util.Arrays.copyOf(f, narrow)));
                if (want.gradNorm()) row.append(',').append(norm);
                if (want.flipRate()) row.append(',').append(flip);
                out.add(row.toString());
                changed |= !row.toString().equals(line);
            }
            if (changed) rewrite(csv, out);
            return want;
        }

        /**
         * Rewrites csv without method's rows that retrained accepts (a row that does not parse is kept), atomically: a
         * temporary file in the same folder moved over it, so a failure leaves the file as it was. Bytes are kept as
         * they are (ISO-8859-1 both ways). A last row without its line end was cut short by a killed run (rows are
         * written whole, then their line end): it is dropped too, whatever its cells say (a step number or loss cut after
         * a digit still parses), and the note returned names the file and line; null where there was none.
         */
        static String dropRows(Path csv, String method, java.util.function.Predicate<String[]> retrained) throws IOException {
            String text = Files.readString(csv, java.nio.charset.StandardCharsets.ISO_8859_1);
            List<String> lines = text.lines().toList(), kept = new ArrayList<>();
            boolean cut = !text.isEmpty() && !text.endsWith("\n") && !text.endsWith("\r");
            boolean dropped = cut;
            for (String line : cut ? lines.subList(0, lines.size() - 1) : lines) {
                String[] f = line.split(",");
                boolean drop = false;
                if (f.length >= 3 && f[0].equals(method)) {
                    try { drop = retrained.test(f); } catch (NumberFormatException e) { /* kept */ }
                }
                if (drop) dropped = true;
                else kept.add(line);
            }
            if (!dropped) return null;
            rewrite(csv, kept);
            return cut ? "dropped line " + lines.size() + " of " + csv + ", '" + clip(lines.getLast()) + "': it has no line end (a row cut short by a killed run)" : null;
        }

        /** line, shortened to 120 characters for a message. */
        private static String clip(String line) { return line.length() > 120 ? line.substring(0, 120) + "..." : line; }

        /** Replaces csv by lines (ISO-8859-1, each ended), atomically: a temporary file in the same folder moved over it. */
        private static void rewrite(Path csv, List<String> lines) throws IOException {
            Path tmp = csv.resolveSibling(csv.getFileName() + ".tmp");   // made as the CSV was (createTempFile's would be owner-only)
            try {
                Files.write(tmp, lines, java.nio.charset.StandardCharsets.ISO_8859_1);
                Files.move(tmp, csv, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
            } finally {
                Files.deleteIfExists(tmp);
            }
        }

        Result train(TrainConfig cfg, TrainData data) throws IOException {
            String name = cfg.methodName();
            Path mdir = dir.resolve(name);
            EpochSums carry = null;
            current = name;
            lastCkpt = null;
            try (Trainer t = new Trainer(cfg, data, o.device())) {
                currentTotal = t.totalSteps();
                t.measureFlipRate(o.flipRate());   // the masks now, read again by a load below
                if (o.resume() != null) {
                    t.load(o.resume());
                    currentStep = lastCkptStep = t.stepsDone();
                    lastCkpt = o.resume();
                    carry = EpochSums.of(Trainer.readMetadata(o.resume()));
                    if (metrics == null) continueCsvs(name, t.stepsDone(), t.epoch());
                    out.printf(Locale.ROOT, "[%s] resumed from %s at step %d/%d (%s)%n", name, o.resume(), t.stepsDone(), t.totalSteps(),
                            t.stepsDone() >= t.totalSteps() ? "the run was finished" : "epoch " + (t.epoch() + 1));
                }
                long total = t.totalSteps();
                long warm = Math.min(5, Math.max(1, (total - t.stepsDone()) / 10));
                List<Double> stepMs = new ArrayList<>();
                long measuredNanos = 0;
                Map<Profile.Part, Long> prof = new EnumMap<>(Profile.Part.class);
                for (Profile.Part p : Profile.Part.values()) prof.put(p, 0L);
                long local = 0;
                double testAcc = Double.NaN, testLoss = Double.NaN, epLoss = Double.NaN, epAcc = Double.NaN;
                // the flip rates of the epoch's steps that have one, and the mean over the last epoch that trained
                double flipSum = 0, flipLast = Double.NaN;
                long flipSteps = 0;
                long runStart = System.nanoTime(), trainNanos = 0;
                int logEvery = Math.max(1, t.stepsPerEpoch() / 10);
                List<double[]> lossC = lossCurves.computeIfAbsent(name, k -> new ArrayList<>());
                List<double[]> accC = accCurves.computeIfAbsent(name, k -> new ArrayList<>());
                List<double[]> testC = testCurves.computeIfAbsent(name, k -> new ArrayList<>());
                long lastDraw = 0;
                try {
                    while (t.epoch() < cfg.epochs()) {
                        // a resumed epoch starts from the sums its checkpoint kept (its steps before the checkpoint)
                        EpochSums start = carry != null ? carry : EpochSums.NONE;
                        carry = null;
                        double lossSum = start.lossSum();
                        long correct = start.correct(), seen = start.seen(), inEpoch = 0;
                        flipSum = start.flipSum();
                        flipSteps = start.flipSteps();
                        long epStart = System.nanoTime();
                        while (t.epochHasNext()) {
                            if (local == warm) Profile.reset();
                            Map<Profile.Part, Long> before = local >= warm ? Profile.snapshot() : null;
                            if (before != null && o.profileOps()) Profile.setByOperation(true);
                            Trainer.StepResult r;
                            try { r = t.trainStep(); } finally { if (o.profileOps()) Profile.setByOperation(false); }
                            local++;
                            inEpoch++;
                            trainNanos += r.nanos();
                            if (before != null) {
                                Map<Profile.Part, Long> after = Profile.snapshot();
                                for (Profile.Part p : Profile.Part.values()) prof.merge(p, after.get(p) - before.get(p), Long::sum);
                                stepMs.add(r.nanos() / 1e6);
                                measuredNanos += r.nanos();
                            }
                            lossSum += r.loss() * r.size();
                            correct += r.correct();
                            seen += r.size();
                            metrics.write(String.format(Locale.ROOT, "%s,%d,%d,%.6f,%.6f,%.6g,%.3f", name, r.epoch() + 1, r.step() + 1, r.loss(), r.accuracy(), r.lr(),
                                    r.nanos() / 1e6));
                            // and the gradients' norm before clipping, where the file has the column (empty where this run does not clip)
                            if (columns.gradNorm()) metrics.write(clipping ? String.format(Locale.ROOT, ",%.6g", r.gradNorm()) : ",");
                            // the masks' flip rate, where the file has the column (empty where this run does not measure it or has no rate)
                            if (columns.flipRate()) metrics.write(Double.isFinite(r.flipRate()) ? String.format(Locale.ROOT, ",%.6g", r.flipRate()) : ",");
                            if (Double.isFinite(r.flipRate())) { flipSum += r.flipRate(); flipSteps++; }
                            metrics.newLine();
                            lossC.add(new double[]{r.step() + 1, r.loss()});
                            accC.add(new double[]{r.step() + 1, r.accuracy()});
                            double rate = inEpoch / ((System.nanoTime() - epStart) / 1e9);
                            long done = r.step() + 1;
                            currentStep = done;
                            String line = String.format(Locale.ROOT, "[%s] epoch %d/%d step %d/%d loss %s train acc %.2f%% %.2f steps/s ETA %s",
                                    name, r.epoch() + 1, cfg.epochs(), done, total, loss4(lossSum / seen), 100.0 * correct / seen, rate, eta((total - done) / rate));
                            if (tty) {
                                long now = System.nanoTime();
                                if (now - lastDraw > 200_000_000L || done == total) {
                                    err.print("\r" + bar(done, total) + " " + line + "\u001b[K");
                                    err.flush();
                                    lastDraw = now;
                                }
                            } else if (inEpoch % logEvery == 0 && t.epochHasNext()) {
                                out.println(line);
                            }
                            if (o.saveEvery() > 0 && done % o.saveEvery() == 0) {
                                metrics.flush();   // a run killed after this checkpoint has every row up to it in metrics.csv
                                t.save(mdir.resolve("checkpoint.safetensors"), new EpochSums(lossSum, correct, seen, flipSum, flipSteps).metadata());
                                lastCkpt = mdir.resolve("checkpoint.safetensors");
                                lastCkptStep = done;
                            }
                        }
                        if (tty) { err.print("\r\u001b[K"); err.flush(); }
                        metrics.flush();
                        Trainer.Eval ev = t.evaluate();
                        testAcc = ev.accuracy();
                        testLoss = ev.loss();
                        if (seen > 0) { epLoss = lossSum / seen; epAcc = (double) correct / seen; flipLast = flipSteps > 0 ? flipSum / flipSteps : Double.NaN; }
                        testC.add(new double[]{t.stepsDone(), testAcc});
                        evals.write(String.format(Locale.ROOT, "%s,%d,%d,%.6f,%.6f%n", name, t.epoch() + 1, t.stepsDone(), testAcc, testLoss));
                        evals.flush();
                        if (seen > 0)
                            out.printf(Locale.ROOT, "[%s] epoch %d/%d done: step %d/%d, loss %s, train acc %.2f%%, test acc %.2f%% (test loss %s), %.1f s%n",
                                    name, t.epoch() + 1, cfg.epochs(), t.stepsDone(), total, loss4(epLoss), 100 * epAcc, 100 * testAcc, loss4(testLoss),
                                    (System.nanoTime() - epStart) / 1e9);
                        else   // resumed from a checkpoint of the epoch's last step (--save-every): no step of it ran here, no loss (it printed NaN)
                            out.printf(Locale.ROOT, "[%s] epoch %d/%d done: step %d/%d (the checkpoint was at its end: no steps of it trained here),"
                                    + " test acc %.2f%% (test loss %s), %.1f s%n", name, t.epoch() + 1, cfg.epochs(), t.stepsDone(), total,
                                    100 * testAcc, loss4(testLoss), (System.nanoTime() - epStart) / 1e9);
                        t.endEpoch();
                    }
                } catch (Trainer.NonFiniteException nf) {   // the loss or, clipping, the gradient norm
                    // the other methods still train; this one ends here, its metrics so far kept, no final weights written
                    if (tty) { err.print("\r\u001b[K"); err.flush(); }
                    metrics.flush();
                    out.printf(Locale.ROOT, "[%s] stopped: %s%n", name, nf.getMessage());
                    return new Result(cfg, Double.NaN, Double.NaN, epLoss, epAcc, median(stepMs), stepMs.size(), Map.of(), t.stepsDone(),
                            (System.nanoTime() - runStart) / 1e9, t.model().parameterCount(), null, nf.getMessage(), nf.what(),
                            flipSteps > 0 ? flipSum / flipSteps : flipLast);   // the stopped epoch's steps so far
                }
                if (Double.isNaN(testAcc)) {   // resumed from a finished run: still report its accuracy
                    Trainer.Eval ev = t.evaluate();
                    testAcc = ev.accuracy();
                    testLoss = ev.loss();
                }
                if (o.profileOps() && !stepMs.isEmpty()) {
                    String table = Profile.table(stepMs.size());
                    out.printf(Locale.ROOT, "[%s] time per operation over %d measured steps:%n%s", name, stepMs.size(), table);
                    Files.writeString(mdir.resolve("profile-ops.txt"), "time per operation over " + stepMs.size() + " measured steps:\n" + table);
                }
                Path ckpt = mdir.resolve("final.safetensors");
                t.save(ckpt);
                Map<String, Double> shares = new LinkedHashMap<>();
                double denom = Math.max(1, measuredNanos);
                long known = 0;
                for (Profile.Part p : Profile.Part.values()) {
                    shares.put(p.name().toLowerCase(Locale.ROOT), prof.get(p) / denom);
                    known += prof.get(p);
                }
                shares.put("java", Math.max(0, measuredNanos - known) / denom);   // graph bookkeeping, allocation, data
                if (stepMs.isEmpty()) shares.clear();   // nothing timed: no shares (summary.json's time_share is {}), not zeros
                double median = median(stepMs);
                return new Result(cfg, testAcc, testLoss, epLoss, epAcc, median, stepMs.size(), shares, t.stepsDone(),
                        (System.nanoTime() - runStart) / 1e9, t.model().parameterCount(), ckpt, null, null, flipLast);
            }
        }

        private void table(List<Result> rs, double wall) {
            out.println();
            int w = 10;   // the method column fits the longest name (fst3_ir_patterns)
            for (Result r : rs) w = Math.max(w, r.cfg().methodName().length());
            String mcol = "%-" + w + "s";
            out.printf(Locale.ROOT, mcol + " %9s %10s %8s %6s %6s %6s %7s %9s %8s %6s %6s%n", "method", "test acc", "train loss", "ms/step",
                    "Eq.1", "Eq.2", "Eq.3", "im2col", "sparsify", "eltwise", "optim", "Java");
            for (Result r : rs) {
                Map<String, Double> s = r.shares();
                if (r.stopped() != null) {
                    out.printf(Locale.ROOT, mcol + "   (stopped at step %d: %s was not finite; see above)%n", r.cfg().methodName(), r.steps() + 1, r.notFinite());
                    continue;
                }
                if (r.measuredSteps() == 0 && !Double.isNaN(r.trainLoss())) {   // trained, but every step was warm-up: no time to show
                    out.printf(Locale.ROOT, mcol + " %8.2f%% %10s   (no step timed: each step trained here was warm-up; train more for times)%n",
                            r.cfg().methodName(), 100 * r.testAcc(), loss4(r.trainLoss()));
                    continue;
                }
                if (r.measuredSteps() == 0 && Double.isNaN(r.trainLoss())) {   // resumed from a finished run: nothing was trained
                    out.printf(Locale.ROOT, mcol + " %8.2f%%   (no steps left to train: the checkpoint's run was finished)%n", r.cfg().methodName(),
                            100 * r.testAcc());
                    continue;
                }
                out.printf(Locale.ROOT, mcol + " %8.2f%% %10s %8.1f %5.1f%% %5.1f%% %5.1f%% %6.1f%% %8.1f%% %7.1f%% %5.1f%% %5.1f%%%n", r.cfg().methodName(),
                        100 * r.testAcc(), loss4(r.trainLoss()), r.medianStepMs(), 100 * s.get("eq1"), 100 * s.get("eq2"), 100 * s.get("eq3"),
                        100 * s.get("im2col"), 100 * s.get("sparsify"), 100 * s.get("elementwise"), 100 * s.get("optimizer"), 100 * s.get("java"));
            }
            out.printf(Locale.ROOT, "(ms/step: median over steps after warm-up; shares of the measured step time: the three GEMMs, im2col/col2im,"
                    + " pruning/compression/shift, elementwise = batch norm, ReLU, pooling, adds, loss and layout copies, the optimizer"
                    + " incl. SR-STE decay, and Java-side overhead = the rest: graph bookkeeping, allocation, data loading) wall time %.1f s%n", wall);
            out.println("(host: " + fst4j.shim.Host.current().describe() + ")");
            // the methods train one after another while the host's speed drifts: the same method's median moved by 10-20 %
            // between runs and positions in session 31 (resnet-small), so the column is not a speed-up
            if (rs.size() > 1)
                out.println("(the methods ran one after another: for speed ratios between them use ./fst4j bench-interleaved, which alternates them)");
        }

        private void writeSummary(List<Result> rs, TrainData data, double wall) throws IOException {
            StringBuilder sb = new StringBuilder("{\n");
            sb.append("  \"data\": ").append(q(data.spec())).append(",\n");
            sb.append("  \"threads\": ").append(Blas.threads()).append(",\n");
            // the CPU the step times were taken on: they are not comparable across hosts
            fst4j.shim.Host h = fst4j.shim.Host.current();
            sb.append("  \"host\": {\"cpu\": ").append(q(h.modelName())).append(", \"vendor\": ").append(q(h.vendor()))
                    .append(", \"family\": ").append(h.family()).append(", \"model\": ").append(h.model())
                    .append(", \"cpus\": ").append(h.cpus()).append(", \"kernels\": ").append(q(h.kernels())).append("},\n");
            sb.append("  \"wall_seconds\": ").append(num(wall)).append(",\n");
            sb.append("  \"runs\": [\n");
            // a resumed run: the earlier summary's entries in their order, this run's method in its place (or as it was,
            // where this process trained nothing: a finished run resumed), the earlier one's other methods kept
            Map<String, String> earlier = o.resume() != null ? earlierRuns(data.spec()) : new LinkedHashMap<>();
            Map<String, String> entries = new LinkedHashMap<>(earlier);
            for (Result r : rs) {
                String m = r.cfg().methodName();
                if (!(r.measuredSteps() == 0 && r.stopped() == null && earlier.containsKey(m))) entries.put(m, entry(r));
            }
            int i = 0;
            for (String e : entries.values()) sb.append("    ").append(e).append(++i < entries.size() ? "," : "").append('\n');
            sb.append("  ]\n}\n");
            Files.writeString(dir.resolve("summary.json"), sb.toString());
        }

        /** One method's entry of summary.json. */
        private String entry(Result r) {
            StringBuilder sb = new StringBuilder();
            sb.append("{\"method\": ").append(q(r.cfg().methodName()))
                    .append(", \"test_acc\": ").append(num(r.testAcc()))
                    .append(", \"test_loss\": ").append(num(r.testLoss()))
                    .append(", \"train_loss\": ").append(num(r.trainLoss()))
                    .append(", \"train_acc\": ").append(num(r.trainAcc()))
                    .append(", \"median_step_ms\": ").append(num(r.medianStepMs()))
                    .append(", \"measured_steps\": ").append(r.measuredSteps())
                    .append(", \"steps\": ").append(r.steps())
                    .append(", \"wall_seconds\": ").append(num(r.wallSeconds()))
                    .append(", \"parameters\": ").append(r.params())
                    .append(", \"checkpoint\": ").append(r.checkpoint() == null ? "null" : q(dir.relativize(r.checkpoint()).toString()))
                    .append(", \"stopped\": ").append(r.stopped() == null ? "null" : q(r.stopped()));
            // only where measured (--flip-rate): other runs' summaries keep their keys; null where no layer is pruned
            if (o.flipRate()) sb.append(", \"flip_rate_last_epoch\": ").append(num(r.flipRate()));
            sb
                    .append(",\n     \"time_share\": {");
            int k = 0;
            for (var e : r.shares().entrySet()) sb.append(k++ > 0 ? ", " : "").append(q(e.getKey())).append(": ").append(num(e.getValue()));
            sb.append("},\n     \"config\": {");
            k = 0;
            for (var e : r.cfg().toMetadata().entrySet()) sb.append(k++ > 0 ? ", " : "").append(q(e.getKey())).append(": ").append(q(e.getValue()));
            return sb.append("}}").toString();
        }

        /**
         * A resumed run's output folder already holds the summary of the run it continues: its entries by method, as JSON
         * text. A summary that cannot be read, or is another data set's, is moved aside (not merged, not lost).
         */
        private Map<String, String> earlierRuns(String dataSpec) throws IOException {
            Map<String, String> kept = new LinkedHashMap<>();
            Path old = dir.resolve("summary.json");
            if (!Files.isRegularFile(old)) return kept;
            try {
                if (!(fst4j.nn.io.JsonText.parse(Files.readString(old)) instanceof Map<?, ?> m) || !(m.get("runs") instanceof List<?> runs))
                    throw new IOException("no list of runs");
                if (!dataSpec.equals(m.get("data")))   // a reused --out of another run: not merged into this one
                    throw new IOException("it is a run on " + m.get("data") + ", this one is on " + dataSpec);
                for (Object run : runs)
                    if (run instanceof Map<?, ?> e) kept.put(String.valueOf(e.get("method")), fst4j.nn.io.JsonText.write(e));
            } catch (IOException e) {
                kept.clear();
                Path aside = dir.resolve("summary-before-resume.json");
                Files.move(old, aside, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                err.println("fst4j train: the earlier " + old + " is not merged into this run's (" + e.getMessage() + "); kept as " + aside);
            }
            return kept;
        }

        /**
         * A resumed run's folder: the charts are drawn again from everything its metrics.csv and eval.csv hold, every
         * method's rows, not only the resumed method's new ones (an unreadable row is skipped: the charts are a view).
         */
        private void earlierCurves() {
            try {
                readCurves(dir, lossCurves, accCurves, testCurves);
            } catch (IOException | java.io.UncheckedIOException e) {   // the charts are a view: drawn from the new rows only then
                err.println("fst4j train: the earlier rows of " + dir.resolve("metrics.csv") + " could not be read for the charts (" + e.getMessage() + ")");
            }
        }

        /** The loss, train-accuracy and test-accuracy curves by method from a run folder's metrics.csv and eval.csv. */
        static void readCurves(Path dir, Map<String, List<double[]>> lossCurves, Map<String, List<double[]>> accCurves,
                               Map<String, List<double[]>> testCurves) throws IOException {
            for (String line : Files.readAllLines(dir.resolve("metrics.csv"))) {   // method,epoch,step,loss,train_acc,...; the header does not parse
                String[] f = line.split(",");
                if (f.length < 5) continue;
                try {
                    double step = Double.parseDouble(f[2]), loss = Double.parseDouble(f[3]), acc = Double.parseDouble(f[4]);
                    lossCurves.computeIfAbsent(f[0], k -> new ArrayList<>()).add(new double[]{step, loss});
                    accCurves.computeIfAbsent(f[0], k -> new ArrayList<>()).add(new double[]{step, acc});
                } catch (NumberFormatException e) { /* skipped */ }
            }
            Path ev = dir.resolve("eval.csv");
            if (Files.isRegularFile(ev))
                for (String line : Files.readAllLines(ev)) {   // method,epoch,step,test_acc,test_loss
                    String[] f = line.split(",");
                    if (f.length < 4) continue;
                    try {
                        double[] p = {Double.parseDouble(f[2]), Double.parseDouble(f[3])};   // parsed first: the header adds no key
                        testCurves.computeIfAbsent(f[0], k -> new ArrayList<>()).add(p);
                    } catch (NumberFormatException e) { /* skipped */ }
                }
        }

        private void plots() throws IOException {
            LineChart loss = new LineChart("Training loss (moving average)", "step", "loss");
            LineChart acc = new LineChart("Accuracy", "step", "accuracy");
            for (String m : lossCurves.keySet()) {
                List<double[]> l = lossCurves.get(m), a = accCurves.get(m), te = testCurves.get(m);
                int win = Math.max(1, Math.min(50, l.size() / 10));
                loss.add(m, xs(l), smooth(ys(l), win));
                acc.add(m + " train", xs(a), smooth(ys(a), win));
                if (te != null && !te.isEmpty()) acc.add(m + " test", xs(te), ys(te));   // a method stopped in its first epoch has none
            }
            acc.yRange(0, 1);
            loss.write(dir.resolve("loss.png"), 900, 540);
            acc.write(dir.resolve("accuracy.png"), 900, 540);
        }
    }

    static double[] xs(List<double[]> p) { return p.stream().mapToDouble(v -> v[0]).toArray(); }
    static double[] ys(List<double[]> p) { return p.stream().mapToDouble(v -> v[1]).toArray(); }

    /** Trailing moving average over win points. */
    static double[] smooth(double[] y, int win) {
        double[] o = new double[y.length];
        double s = 0;
        for (int i = 0; i < y.length; i++) {
            s += y[i];
            if (i >= win) s -= y[i - win];
            o[i] = s / Math.min(i + 1, win);
        }
        return o;
    }

    static double median(List<Double> v) {
        if (v.isEmpty()) return Double.NaN;
        double[] a = v.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = a.length;
        return n % 2 == 1 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
    }

    static String bar(long done, long total) {
        int w = 20, f = (int) Math.min(w, w * done / Math.max(1, total));
        return "[" + "#".repeat(f) + ".".repeat(w - f) + "]";
    }

    static String eta(double seconds) {
        if (!Double.isFinite(seconds) || seconds < 0) return "?";
        long s = Math.round(seconds);
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm", s / 3600, s % 3600 / 60) : String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }

    static String num(double d) { return Double.isFinite(d) ? String.format(Locale.ROOT, "%.6g", d) : "null"; }

    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }
}
