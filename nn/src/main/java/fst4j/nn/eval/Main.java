package fst4j.nn.eval;

import fst4j.autograd.SparseConfig;
import fst4j.nn.Models;
import fst4j.nn.Sparse;
import fst4j.nn.analysis.Main.Flags;
import fst4j.nn.cli.Cli;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.train.CheckpointException;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.nn.train.Trainer;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Blas;
import fst4j.tensor.Device;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code fst4j eval CKPT}: the test accuracy and loss of a checkpoint written by {@code fst4j train}, on its data set's
 * test images (or another data set's of the same shape), with the forward pass as trained (S(W) where the method prunes
 * W) and with the dense weights W, so the cost of the 2:4 weights is one subtraction away. Exit status: 0 done, 1
 * failure (data, checkpoint, device), 2 usage error.
 */
public final class Main {
    private Main() {}

    static final String USAGE = "usage: fst4j eval CKPT [--data D] [--test-subset N] [--weights as-trained|dense|both] [--threads N]"
            + " [--device cpu|cuda]";

    static final String HELP = """
            fst4j eval: test accuracy and loss of a checkpoint written by fst4j train.
              CKPT               OUT/<method>/final.safetensors or checkpoint.safetensors
              --data D           the checkpoint's data set (default) or fashion-mnist, mnist:DIR, cifar10:DIR; its training
                                 images give the input normalisation, as in training, so it must have as many as the run had
              --test-subset N    the first N test images only (default all)
              --weights W        as-trained: the forward pass the method trains (S(W) X where it prunes W); dense: W X in
                                 every layer; both (default)
              --threads N        native kernel threads (default: all cores)
              --device D         cpu (default) or cuda
            """;

    private static final Cli.Command COMMAND = new Cli.Command("eval", HELP, USAGE,
            List.of(CheckpointException.class, fst4j.shim.CudaUnavailableException.class));   // the latter: --device cuda where there is none

    /** One evaluation: which weights, and what they scored. */
    record Line(String weights, Trainer.Eval eval, double seconds) {}

    public static void main(String[] args) { System.exit(run(args, System.out, System.err)); }

    public static int run(String[] args, PrintStream out, PrintStream err) { return run(args, out, err, TrainData::load); }

    static int run(String[] args, PrintStream out, PrintStream err, DataSource source) {
        return COMMAND.run(args, out, err, () -> {
            if (args.length == 0 || args[0].startsWith("--") || args[0].isBlank()) throw new UsageException("which checkpoint?");
            Path ckpt = Path.of(args[0]);
            Map<String, String> v = Flags.parse(Arrays.copyOfRange(args, 1, args.length), List.of(),
                    List.of("--data", "--test-subset", "--weights", "--threads", "--device"), UsageException::new);
            String weights = v.getOrDefault("--weights", "both").toLowerCase(Locale.ROOT);
            if (!List.of("as-trained", "dense", "both").contains(weights))
                throw new UsageException("--weights is as-trained, dense or both, not '" + v.get("--weights") + "'");
            String dev = v.getOrDefault("--device", "cpu").toLowerCase(Locale.ROOT);
            if (!dev.equals("cpu") && !dev.equals("cuda")) throw new UsageException("unknown device '" + v.get("--device") + "' (cpu, cuda)");
            int testSubset = Flags.nonNegInt(v, "--test-subset", 0, UsageException::new);
            if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));
            if (Files.isDirectory(ckpt)) {   // a run's folder: name its checkpoints
                List<String> found = new java.util.ArrayList<>();
                try (var dirs = Files.list(ckpt)) {
                    dirs.sorted().map(d -> d.resolve("final.safetensors")).filter(Files::isRegularFile).forEach(f -> found.add(f.toString()));
                }
                throw new IOException(ckpt + " is a folder; give one checkpoint" + (found.isEmpty() ? " file (<out>/<method>/final.safetensors)"
                        : ", e.g. " + String.join(" or ", found.subList(0, Math.min(3, found.size())))));
            }
            if (!Files.isRegularFile(ckpt)) throw new IOException("no checkpoint file " + ckpt);

            TrainConfig cfg = Trainer.readConfig(ckpt);
            Map<String, String> meta = Trainer.readMetadata(ckpt);
            String dataSpec = v.getOrDefault("--data", meta.getOrDefault("data", "fashion-mnist"));
            TrainData data = source.load(dataSpec);
            TrainConfig evalCfg = cfg.withSubsets(cfg.trainSubset(), testSubset);
            try (Trainer t = new Trainer(evalCfg, data, dev.equals("cuda") ? Device.CUDA : Device.CPU)) {
                t.load(ckpt);
                out.printf(Locale.ROOT, "fst4j eval: %s: %s, %s, step %d of %d, trained on %s; %d test images of %s%n", ckpt, cfg.model(),
                        cfg.methodName(), t.stepsDone(), t.totalSteps(), meta.getOrDefault("data", "?"), t.data().test().size(), data.spec());
                boolean pruned = Models.sparseLayers(t.model()).values().stream().anyMatch(s -> !(s.sparsity().w() instanceof Sparsifier.Dense));
                if (!weights.equals("dense")) print(out, timed(t, pruned ? "as trained (S(W) X)" : "as trained (W X)"));
                if (!weights.equals("as-trained")) {
                    if (!pruned && weights.equals("both")) {
                        out.println("  (the method does not prune W in the forward pass: the dense weights are the ones it trains)");
                    } else {
                        for (Sparse s : Models.sparseLayers(t.model()).values()) s.setSparsity(SparseConfig.Method.DENSE.config());
                        print(out, timed(t, "dense W X"));
                    }
                }
            }
            return 0;
        });
    }

    private static Line timed(Trainer t, String weights) {
        long t0 = System.nanoTime();
        Trainer.Eval e = t.evaluate();
        return new Line(weights, e, (System.nanoTime() - t0) / 1e9);
    }

    private static void print(PrintStream out, Line l) {
        out.printf(Locale.ROOT, "  %-22s test acc %6.2f%%  loss %.4f  (%d images, %.1f s)%n", l.weights(), 100 * l.eval().accuracy(),
                l.eval().loss(), l.eval().samples(), l.seconds());
    }
}
