package fst4j.nn.analysis;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.cli.Cli;
import fst4j.nn.cli.Cli.DataSource;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.OutputSet;
import fst4j.nn.data.ImageDataset;
import fst4j.nn.io.SafeTensors;
import fst4j.nn.plot.LineChart;
import fst4j.nn.train.CheckpointException;
import fst4j.nn.train.TrainConfig;
import fst4j.nn.train.TrainData;
import fst4j.nn.train.Trainer;
import fst4j.tensor.Blas;
import fst4j.tensor.Tensor;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code fst4j analyze similarity}: Figures 4 and 5 of the paper for a model, freshly initialised or loaded from a
 * {@code fst4j train} checkpoint. Prints and writes (similarity.md, similarity.csv) the per-layer H(X), H(X|X') and
 * similarity of each convolution's input over N test images and over N white-noise images, draws similarity.png
 * (similarity per layer, real vs noise) and fig5-LAYER.png (one channel of one image: original, adjacent difference,
 * reconstruction from the even columns). Exit status: 0 done, 1 failure, 2 usage error.
 */
public final class Main {
    private Main() {}

    static final String USAGE = "usage: fst4j analyze similarity [--model M] [--method M] [--seed N] [--checkpoint CKPT] [--data D]"
            + " [--images N] [--batch N] [--bins N] [--fig5-layers L1,L2] [--fig5-image I] [--include-1x1] [--threads N] [--out DIR]";

    static final String HELP = """
            fst4j analyze similarity: spatial similarity H(X) - H(X|X') of every conv layer's input (paper Figure 4)
            and adjacent-difference / reconstruction images (Figure 5).
              --checkpoint CKPT  a checkpoint written by fst4j train (its model, method and data); else a fresh model:
              --model M          resnet-small (default), cnn, resnet18, resnet18-imagenet
              --method M         sparsity method of the fresh model (default dense; forward-only use here)
              --seed N           init seed of the fresh model and the noise images (default 0)
              --data D           fashion-mnist (default), mnist:DIR, cifar10:DIR; the first --images test images are used
              --images N         images, real and noise each (default 1000, as the paper)
              --batch N          forward batch (default 250)
              --bins N           quantisation bins (default 256 = 8 bit)
              --fig5-layers A,B  conv layers for Figure 5 (default: the first conv and the first block's conv2)
              --fig5-image I     test image index for Figure 5 (default 0)
              --include-1x1      also measure 1x1 projection convs (their input is the block's conv1 input)
              --threads N        native kernel threads (default: all cores)
              --out DIR          output directory (default runs/similarity)
            """;

    private static final Cli.Command COMMAND = new Cli.Command("analyze", HELP, USAGE, List.of(CheckpointException.class));

    public static void main(String[] args) { System.exit(run(args, System.out, System.err)); }

    public static int run(String[] args, PrintStream out, PrintStream err) { return run(args, out, err, TrainData::load); }

    static int run(String[] args, PrintStream out, PrintStream err, DataSource source) {
        return COMMAND.run(args, out, err, () -> {
            if (args.length == 0) throw new UsageException("which analysis? (similarity)");
            if (!args[0].equals("similarity")) throw new UsageException("unknown analysis '" + args[0] + "'");
            Map<String, String> v = Flags.parse(Arrays.copyOfRange(args, 1, args.length), List.of("--include-1x1"),
                    List.of("--model", "--method", "--seed", "--checkpoint", "--data", "--images", "--batch", "--bins", "--fig5-layers",
                            "--fig5-image", "--threads", "--out"), UsageException::new);
            return similarity(v, out, source);
        });
    }

    static int similarity(Map<String, String> v, PrintStream out, DataSource source) throws UsageException, IOException {
        int images = Flags.posInt(v, "--images", 1000, UsageException::new);
        int batch = Flags.posInt(v, "--batch", 250, UsageException::new);
        int bins = Flags.posInt(v, "--bins", Entropy.BINS_8BIT, UsageException::new);
        int fig5Image = Flags.nonNegInt(v, "--fig5-image", 0, UsageException::new);
        long seed = Flags.longOf(v, "--seed", 0, UsageException::new);
        if (bins > 4096) throw new UsageException("--bins must be at most 4096");
        if (v.containsKey("--threads")) Blas.setThreads(Flags.posInt(v, "--threads", 1, UsageException::new));
        Path ckpt = v.containsKey("--checkpoint") ? Path.of(v.get("--checkpoint")) : null;
        String modelName, dataSpec, what;
        Method method;
        Map<String, String> meta = Map.of();
        TrainConfig cfg = null;
        if (ckpt != null) {
            if (v.containsKey("--method"))
                throw new UsageException("--method comes from the checkpoint");
            cfg = Trainer.readConfig(ckpt);
            meta = Trainer.readMetadata(ckpt);
            if (v.containsKey("--model") && !v.get("--model").equalsIgnoreCase(cfg.model()))
                throw new UsageException("the checkpoint holds a " + cfg.model() + ", not a " + v.get("--model"));
            modelName = cfg.model();
            method = cfg.method();
            dataSpec = v.getOrDefault("--data", meta.getOrDefault("data", "fashion-mnist"));
            what = "checkpoint " + ckpt + " (" + cfg.model() + ", " + cfg.methodName() + ", step " + meta.getOrDefault("total_steps", "?") + ")";
        } else {
            modelName = v.getOrDefault("--model", "resnet-small").toLowerCase(Locale.ROOT);
            try {
                method = Method.parse(v.getOrDefault("--method", "dense"));
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
            dataSpec = v.getOrDefault("--data", "fashion-mnist");
            what = "freshly initialised " + modelName + " (" + method.name().toLowerCase(Locale.ROOT) + ", seed " + seed + ")";
        }
        if (modelName.equals("mlp")) throw new UsageException("the mlp has no convolutions");
        if (!List.of("cnn", "small-cnn", "resnet-small", "resnet18", "resnet18-imagenet").contains(modelName))   // as train and experiment do
            throw new UsageException("unknown model '" + modelName + "'");
        TrainData data = source.load(dataSpec);
        ImageDataset test = data.test().subset(images);
        Path dir = v.containsKey("--out") ? Path.of(v.get("--out")) : Path.of("runs", "similarity");
        try (Module model = Models.byName(modelName, test.channels(), test.height(), test.width(), test.numClasses(), method,
                cfg != null ? cfg.seed() : seed)) {
            if (cfg != null) Trainer.applyVariants(model, cfg);   // the layers as trained (the N:M pattern changes S(W); the variants leave the forward pass as it is)
            if (ckpt != null) loadModel(model, ckpt);
            boolean all1x1 = v.containsKey("--include-1x1");
            var convs = FeatureRecorder.convLayers(model);
            java.util.function.Predicate<String> include = n -> all1x1 || !convs.get(n).kernelSize().equals(new fst4j.nn.Conv2d.Pair(1, 1));
            // Figure 5's layers and image are checked before the measurement: a bad one was a usage error after the
            // similarity outputs were written, and an --fig5-layers naming no layer drew no Figure 5 yet said it had
            List<String> layers = new ArrayList<>();
            if (v.containsKey("--fig5-layers")) {
                for (String s : v.get("--fig5-layers").split(",")) if (!s.isBlank()) layers.add(s.trim());
                if (layers.isEmpty()) throw new UsageException("--fig5-layers names no layer; layers: " + convs.keySet());
            } else {
                List<String> names = new ArrayList<>(convs.keySet());
                layers.add(names.get(0));
                String second = names.stream().filter(n -> n.endsWith(".conv2")).findFirst().orElse(names.get(Math.min(1, names.size() - 1)));
                if (!layers.contains(second)) layers.add(second);   // a model of one conv: that one, once
            }
            for (String l : layers) if (!convs.containsKey(l)) throw new UsageException("no conv layer '" + l + "'; layers: " + convs.keySet());
            // one image per layer: a layer named twice (or two whose names give one file) was refused by the output set
            // after the measuring, every measurement lost
            Map<Path, String> fig5Files = new HashMap<>();
            for (String l : layers) {
                String other = fig5Files.putIfAbsent(fig5File(dir, l), l);
                if (other != null) throw new UsageException("--fig5-layers names " + (other.equals(l) ? l + " twice" : other + " and " + l)
                        + " (both would be " + fig5File(dir, l).getFileName() + ")");
            }
            if (fig5Image >= data.test().size()) throw new UsageException("--fig5-image " + fig5Image + " is beyond the " + data.test().size() + " test images");
            String noCharts = fst4j.nn.plot.Plots.why();   // the charts are part of the output: said before the measuring, not after it
            if (noCharts != null) throw new IOException("the charts cannot be drawn: " + noCharts + "; run with a full JDK 25 (./fst4j picks one)");
            Files.createDirectories(dir);
            // and so must every output (a directory named similarity.csv, a read-only file): found after the measuring, it was lost
            Path mdFile = dir.resolve("similarity.md"), csvFile = dir.resolve("similarity.csv"), chartFile = dir.resolve("similarity.png");
            List<Path> outputs = new ArrayList<>(List.of(mdFile, csvFile, chartFile));
            for (String l : layers) outputs.add(fig5File(dir, l));
            OutputSet.checkWritable(outputs.toArray(Path[]::new));
            out.printf(Locale.ROOT, "fst4j analyze similarity: %s; %d %s test images and %d white-noise images, %d bins; output in %s%n",
                    what, test.size(), data.spec(), test.size(), bins, dir);
            List<SpatialSimilarity.Layer> real = SpatialSimilarity.measure(model, test, data.mean(), data.std(), batch, bins, include);
            ImageDataset noise = SpatialSimilarity.whiteNoise(test.size(), test.channels(), test.height(), test.width(), seed + 1);
            List<SpatialSimilarity.Layer> noisy = SpatialSimilarity.measure(model, noise, data.mean(), data.std(), batch, bins, include);
            String md = table(what, real, noisy, test.size(), data.spec());
            out.println();
            out.print(md);
            String weak = belowFloor(real);
            if (weak != null)
                out.printf(Locale.ROOT, "note: with %d images the similarity of layer(s) %s is at or below the estimator's bias floor (what"
                        + " independent noise scores on average at these pairs and bins): it says nothing there; use more --images"
                        + " (default 1000, as the paper) or fewer --bins%n", test.size(), weak);
            // every file as one set, written once all are made (the table last): a failed write leaves the previous set as it was
            OutputSet files = new OutputSet();
            LineChart chart = new LineChart("Spatial similarity H(X) - H(X|X') per conv input: " + (ckpt != null ? "trained " : "fresh ") + modelName,
                    "conv layer (index in similarity.md)", "bits");
            double[] xs = new double[real.size()], yr = new double[real.size()], yn = new double[real.size()];
            for (int i = 0; i < real.size(); i++) {
                xs[i] = i + 1;
                yr[i] = real.get(i).entropy().similarity();
                yn[i] = noisy.get(i).entropy().similarity();
            }
            chart.add("real images (" + data.spec() + ")", xs, yr).add("white noise", xs, yn);
            files.png(chartFile, chart.render(900, 540));

            // Figure 5
            Map<String, SpatialSimilarity.Feature> feats = SpatialSimilarity.features(model, data.test(), fig5Image, data.mean(), data.std(), layers);
            out.println();
            for (String l : layers) {
                SpatialSimilarity.Feature f = feats.get(l);
                int c = f.mostVariedChannel();
                float[][] x = f.channel(c), ad = AdjacentDifference.difference(x), xr = AdjacentDifference.reconstruction(x);
                Path png = fig5File(dir, l);
                files.png(png, AdjacentDifference.render("input of conv " + l + ", channel " + c + " of test image " + fig5Image,
                        new String[]{"original X", "difference X_ad", "reconstruction X_r"}, new float[][][]{x, ad, xr},
                        Math.max(2, 224 / Math.max(f.height(), f.width()))));
                out.printf(Locale.ROOT, "Figure 5, conv %s (input %dx%dx%d), channel %d: relative error of the reconstruction ||X_r - X||/||X|| = %.3f,"
                        + " of zero-filling the odd columns = %.3f; %s%n", l, f.channels(), f.height(), f.width(), c,
                        AdjacentDifference.relativeError(xr, x), AdjacentDifference.relativeError(zeroOdd(x), x), png);
            }
            files.text(csvFile, csv(real, noisy)).text(mdFile, md).write();
        }
        out.println("wrote " + dir.resolve("similarity.md") + ", similarity.csv, similarity.png and fig5-*.png");
        return 0;
    }

    /** Figure 5's image of conv layer l. */
    private static Path fig5File(Path dir, String l) { return dir.resolve("fig5-" + l.replace('.', '_') + ".png"); }

    static float[][] zeroOdd(float[][] x) {
        float[][] o = new float[x.length][];
        for (int y = 0; y < x.length; y++) {
            o[y] = x[y].clone();
            for (int i = 1; i < o[y].length; i += 2) o[y][i] = 0;
        }
        return o;
    }

    /** Copies the "model." tensors of a fst4j train checkpoint into model. */
    static void loadModel(Module model, Path ckpt) {
        try (SafeTensors.Contents c = SafeTensors.read(ckpt)) {
            Map<String, Tensor> state = new HashMap<>();
            c.tensors().forEach((k, t) -> { if (k.startsWith("model.")) state.put(k.substring(6), t); });
            model.loadStateDict(state);
            fst4j.nn.Asp.restore(model, c.int64s());   // ASP's frozen masks (its W alone would run dense)
        } catch (IOException e) {
            throw new CheckpointException(ckpt, e.getMessage(), e);
        } catch (IllegalArgumentException e) {
            throw new CheckpointException(ckpt, e.getMessage(), e);
        }
    }

    static String table(String what, List<SpatialSimilarity.Layer> real, List<SpatialSimilarity.Layer> noise, int n, String data) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "Spatial similarity of conv inputs, %s; %d %s test images vs %d white-noise images;"
                + " bits, %d-bin quantisation over each tensor's min..max; X' = right neighbour (w+1)%n%n", what, n, data, n,
                real.isEmpty() ? 0 : real.get(0).entropy().bins()));
        sb.append("| # | layer | input C x H x W | H(X) | H(X\\|X') | similarity | noise H(X) | noise H(X\\|X') | noise similarity | pairs | bias floor |\n");
        sb.append("|---|-------|-----------------|------|----------|------------|------------|----------------|------------------|-------|------------|\n");
        for (int i = 0; i < real.size(); i++) {
            SpatialSimilarity.Layer r = real.get(i), z = noise.get(i);
            Entropy.Similarity a = r.entropy(), b = z.entropy();
            sb.append(String.format(Locale.ROOT, "| %d | %s | %dx%dx%d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %d | %.3f |%n", i + 1, r.name(),
                    r.channels(), r.height(), r.width(), a.hX(), a.conditional(), a.similarity(), b.hX(), b.conditional(), b.similarity(),
                    a.pairs(), a.noiseFloor()));
        }
        return sb.toString();
    }

    static String csv(List<SpatialSimilarity.Layer> real, List<SpatialSimilarity.Layer> noise) {
        // bias_floor: similarity.md's column too (what independent noise scores on average at these pairs and bins)
        StringBuilder sb = new StringBuilder("layer,channels,height,width,input,min,max,h_x,h_x_given_xp,h_joint,similarity,pairs,bias_floor\n");
        for (var pair : List.of(Map.entry("real", real), Map.entry("noise", noise)))
            for (SpatialSimilarity.Layer l : pair.getValue()) {
                Entropy.Similarity s = l.entropy();
                sb.append(String.format(Locale.ROOT, "%s,%d,%d,%d,%s,%.6g,%.6g,%.6f,%.6f,%.6f,%.6f,%d,%.6f%n", l.name(), l.channels(), l.height(), l.width(),
                        pair.getKey(), l.min(), l.max(), s.hX(), s.conditional(), s.hJoint(), s.similarity(), s.pairs(), s.noiseFloor()));
            }
        return sb.toString();
    }

    /** The 1-based indices of the layers whose similarity is at or below its bias floor, or null where none is. */
    static String belowFloor(List<SpatialSimilarity.Layer> layers) {
        List<String> weak = new ArrayList<>();
        for (int i = 0; i < layers.size(); i++) {
            Entropy.Similarity s = layers.get(i).entropy();
            if (s.similarity() <= s.noiseFloor()) weak.add(Integer.toString(i + 1));
        }
        return weak.isEmpty() ? null : String.join(", ", weak);
    }

    /** Tiny flag parser shared with fst4j.nn.experiment: --flag VALUE, --flag=VALUE, boolean flags. */
    public static final class Flags {
        private Flags() {}

        public interface Err<E extends Exception> { E make(String message); }

        public static <E extends Exception> Map<String, String> parse(String[] args, List<String> bools, List<String> valued, Err<E> err) throws E {
            Map<String, String> v = new LinkedHashMap<>();
            for (int i = 0; i < args.length; i++) {
                String a = args[i], val = null;
                int eq = a.indexOf('=');
                if (a.startsWith("--") && eq > 0) { val = a.substring(eq + 1); a = a.substring(0, eq); }
                if (bools.contains(a)) {
                    if (val != null) throw err.make(a + " takes no value");
                    v.put(a, "true");
                } else if (valued.contains(a)) {
                    if (val == null) {
                        if (i + 1 >= args.length || args[i + 1].startsWith("--")) throw err.make(a + " needs a value");
                        val = args[++i];
                    }
                    // an empty value (an unset shell variable) is no value: --out "" wrote the outputs into the current directory
                    if (val.isBlank()) throw err.make(a + " needs a value, got '" + val + "'");
                    if (v.put(a, val) != null) throw err.make(a + " given twice");
                } else {
                    throw err.make(a.startsWith("-") ? "unknown flag " + a : "unexpected argument '" + a + "'");
                }
            }
            return v;
        }

        public static <E extends Exception> int posInt(Map<String, String> v, String k, int def, Err<E> err) throws E {
            int x = nonNegInt(v, k, def, err);
            if (x == 0) throw err.make(k + " needs a positive integer, got '" + v.get(k) + "'");
            return x;
        }

        public static <E extends Exception> int nonNegInt(Map<String, String> v, String k, int def, Err<E> err) throws E {
            String s = v.get(k);
            if (s == null) return def;
            try {
                int x = Integer.parseInt(s.trim().replace("_", ""));
                if (x < 0) throw new NumberFormatException();
                return x;
            } catch (NumberFormatException e) {
                throw err.make(k + " needs a non-negative integer, got '" + s + "'");
            }
        }

        public static <E extends Exception> long longOf(Map<String, String> v, String k, long def, Err<E> err) throws E {
            String s = v.get(k);
            if (s == null) return def;
            try {
                return Long.parseLong(s.trim());
            } catch (NumberFormatException e) {
                throw err.make(k + " needs an integer, got '" + s + "'");
            }
        }

        /** A finite number >= 0 (train's --clip-grad-norm and its message), def where k is not given. */
        public static <E extends Exception> double nonNegDouble(Map<String, String> v, String k, double def, Err<E> err) throws E {
            String s = v.get(k);
            if (s == null) return def;
            try {
                double x = Double.parseDouble(s.trim());
                if (!Double.isFinite(x) || x < 0) throw new NumberFormatException();
                return x;
            } catch (NumberFormatException e) {
                throw err.make(k + " needs a non-negative number, got '" + s + "'");
            }
        }

        public static <E extends Exception> double posDouble(Map<String, String> v, String k, double def, Err<E> err) throws E {
            String s = v.get(k);
            if (s == null) return def;
            try {
                double x = Double.parseDouble(s.trim());
                if (!Double.isFinite(x) || x <= 0) throw new NumberFormatException();
                return x;
            } catch (NumberFormatException e) {
                throw err.make(k + " needs a positive number, got '" + s + "'");
            }
        }
    }
}
