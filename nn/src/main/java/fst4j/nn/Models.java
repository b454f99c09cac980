package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.tensor.Rng;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Ready-made models. Every conv/linear takes its sparsity from the method; as in the authors' code the
 * first convolution and the final classifier stay dense unless {@code sparseEnds} is set (use
 * {@link #override} for any other per-layer choice).
 */
public final class Models {
    private Models() {}

    /** in -> hidden... -> classes, ReLU between. */
    public static Sequential mlp(int in, int[] hidden, int classes, Method method, long seed) {
        Rng rng = new Rng(seed);
        List<Module> layers = new ArrayList<>();
        layers.add(new Flatten());
        int prev = in;
        for (int i = 0; i < hidden.length; i++) {
            layers.add(new Linear(prev, hidden[i], true, (i == 0 ? Method.DENSE : method).config(seed + i), rng));
            layers.add(new ReLU());
            prev = hidden[i];
        }
        layers.add(new Linear(prev, classes, true, Method.DENSE.config(), rng));
        return new Sequential(layers.toArray(Module[]::new));
    }

    /**
     * A tiny transformer (token + positional embedding, layers pre-LN blocks, LayerNorm, head; {@link TinyTransformer})
     * whose feed-forward Linear layers take the method's 2:4 (Hu et al. 2024 make an FFN's three GEMMs sparse); the
     * attention projections and the head stay dense, as the other models' ends. d and ff multiples of 4 for 2:4.
     */
    public static TinyTransformer tinyTransformer(int vocab, int maxLen, int d, int heads, int ff, int layers, boolean causal, Method method, long seed) {
        return new TinyTransformer(vocab, maxLen, d, heads, ff, layers, 0, causal, Method.DENSE, method, seed);
    }

    /**
     * The small CNN (for 1x28x28): conv(c->32)+BN+ReLU, conv(32->64)+BN+ReLU+maxpool 2,
     * conv(64->128)+BN+ReLU+maxpool 2, flatten, linear(128*(h/4)*(w/4) -> classes).
     */
    public static Sequential smallCnn(int channels, int h, int w, int classes, Method method, long seed) {
        // smaller images pool away to nothing: the classifier became "Linear needs positive sizes, got 0 -> 10"
        if (h < 4 || w < 4) throw new IllegalArgumentException("the cnn needs images of at least 4x4 pixels (it max-pools 2x2 twice), got " + h + "x" + w);
        Rng rng = new Rng(seed);
        return new Sequential(
                new Conv2d(channels, 32, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(32), new ReLU(),
                new Conv2d(32, 64, 3, 1, 1, false, method.config(seed + 1), rng), new BatchNorm2d(64), new ReLU(), new MaxPool2d(2),
                new Conv2d(64, 128, 3, 1, 1, false, method.config(seed + 2), rng), new BatchNorm2d(128), new ReLU(), new MaxPool2d(2),
                new Flatten(),
                new Linear(128 * (h / 4) * (w / 4), classes, true, Method.DENSE.config(), rng));
    }

    /**
     * ResNet with basic blocks. widths: channels of the 4 (or fewer) stages; blocks: blocks per stage.
     * CIFAR stem: conv3x3 stride 1; ImageNet stem: conv7x7 stride 2 + maxpool 3x3 stride 2.
     */
    public static Sequential resnet(int channels, int[] widths, int[] blocks, int classes, boolean imagenetStem, Method method, long seed) {
        if (widths.length != blocks.length) throw new IllegalArgumentException("widths and blocks need the same length");
        Rng rng = new Rng(seed);
        List<Module> layers = new ArrayList<>();
        if (imagenetStem) {
            layers.add(new Conv2d(channels, widths[0], 7, 2, 3, false, Method.DENSE.config(), rng));
            layers.add(new BatchNorm2d(widths[0]));
            layers.add(new ReLU());
            layers.add(new MaxPool2d(3, 2, 1));
        } else {
            layers.add(new Conv2d(channels, widths[0], 3, 1, 1, false, Method.DENSE.config(), rng));
            layers.add(new BatchNorm2d(widths[0]));
            layers.add(new ReLU());
        }
        int cin = widths[0];
        long s = seed + 100;
        for (int st = 0; st < widths.length; st++)
            for (int b = 0; b < blocks[st]; b++) {
                layers.add(new BasicBlock(cin, widths[st], b == 0 && st > 0 ? 2 : 1, method, rng, s));
                s += 3;
                cin = widths[st];
            }
        layers.add(new AdaptiveAvgPool2d(1, 1));
        layers.add(new Flatten());
        layers.add(new Linear(cin, classes, true, Method.DENSE.config(), rng));
        return new Sequential(layers.toArray(Module[]::new));
    }

    public static Sequential resnet18(int channels, int classes, boolean imagenetStem, Method method, long seed) {
        return resnet(channels, new int[]{64, 128, 256, 512}, new int[]{2, 2, 2, 2}, classes, imagenetStem, method, seed);
    }

    /** A narrow, shallow ResNet for fast CPU runs: widths 16-32-64, one block per stage. */
    public static Sequential resnetSmall(int channels, int classes, Method method, long seed) {
        return resnet(channels, new int[]{16, 32, 64}, new int[]{1, 1, 1}, classes, false, method, seed);
    }

    /** Builds a model by name: mlp, cnn, resnet-small, resnet18 (CIFAR stem), resnet18-imagenet. */
    public static Sequential byName(String name, int channels, int h, int w, int classes, Method method, long seed) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "mlp" -> mlp(channels * h * w, new int[]{256, 128}, classes, method, seed);
            case "cnn", "small-cnn" -> smallCnn(channels, h, w, classes, method, seed);
            case "resnet-small" -> resnetSmall(channels, classes, method, seed);
            case "resnet18" -> resnet18(channels, classes, false, method, seed);
            case "resnet18-imagenet" -> resnet18(channels, classes, true, method, seed);
            default -> throw new IllegalArgumentException("unknown model '" + name + "'; known: mlp, cnn, resnet-small, resnet18, resnet18-imagenet");
        };
    }

    /** Every layer that goes through the Eq. 1-3 node, in order, with its dotted name. */
    public static java.util.LinkedHashMap<String, Sparse> sparseLayers(Module m) {
        java.util.LinkedHashMap<String, Sparse> out = new java.util.LinkedHashMap<>();
        walk("", m, out);
        return out;
    }

    /**
     * What puts every sparse layer's configuration back as it is now (a layer whose configuration is still that one is
     * left alone): the undo of a change that can only be checked by making it, such as ASP fixing its masks.
     */
    public static Runnable sparsityRestorer(Module m) {
        java.util.Map<Sparse, fst4j.autograd.SparseConfig> before = new java.util.LinkedHashMap<>();
        sparseLayers(m).values().forEach(l -> before.put(l, l.sparsity()));
        return () -> before.forEach((l, c) -> { if (l.sparsity() != c) l.setSparsity(c); });
    }

    private static void walk(String prefix, Module m, java.util.Map<String, Sparse> out) {
        if (m instanceof Sparse s) out.put(prefix.isEmpty() ? "" : prefix.substring(0, prefix.length() - 1), s);
        m.children().forEach((k, c) -> walk(prefix + k + ".", c, out));
    }

    /**
     * The sparsifiers with state in m's layers (TSM's cached mask, the authors' pattern draws, ASP's frozen masks, a rule
     * of one's own that implements {@link fst4j.sparse.StatefulSparsifier}, ReSprop's samples), by "LAYER.SLOT" (slots w,
     * wt, dy_eq2, dy_eq3, xt, resprop): what a checkpoint of one's own must save ({@code exportState}) besides
     * {@link Module#stateDict()} for training to resume exactly, and import into the same model's rules before going on.
     * The trainer's checkpoints hold them under "sparsity." + these names.
     */
    public static java.util.LinkedHashMap<String, fst4j.sparse.StatefulSparsifier> statefulSparsifiers(Module m) {
        java.util.LinkedHashMap<String, fst4j.sparse.StatefulSparsifier> out = new java.util.LinkedHashMap<>();
        sparseLayers(m).forEach((name, layer) -> {
            SparseConfig c = layer.sparsity();
            fst4j.sparse.Sparsifier[] slots = {c.w(), c.wt(), c.dyEq2(), c.dyEq3(), c.xt()};
            String[] names = {"w", "wt", "dy_eq2", "dy_eq3", "xt"};
            for (int i = 0; i < slots.length; i++)
                if (slots[i] instanceof fst4j.sparse.StatefulSparsifier st) out.put(name + "." + names[i], st);
            ReSprop r = layer.resprop();
            if (r != null) out.put(name + ".resprop", r);
        });
        return out;
    }

    /** Per-layer override: sets the sparsity of the layer with this dotted name (e.g. "0" for the stem conv). */
    public static void override(Module m, String layer, SparseConfig cfg) {
        Sparse s = sparseLayers(m).get(layer);
        if (s == null) throw new IllegalArgumentException("no conv/linear layer named '" + layer + "'; layers: " + sparseLayers(m).keySet());
        s.setSparsity(cfg);
    }
}
