package fst4j.autograd;

import fst4j.sparse.AuthorsFixed24;
import fst4j.sparse.NM;
import fst4j.sparse.Restoration;
import fst4j.sparse.Sparsifier;
import fst4j.sparse.Transposable24;

import java.util.Locale;

/**
 * What a layer's three GEMMs prune (fst-method.md, "A layer as three GEMMs"). Matrices are in the
 * paper's orientation: W [Cout, K], X [K, cols], Y = W X [Cout, cols], dY [Cout, cols], where
 * K = Cin*k*k (conv) or in_features (linear) and cols = N*H*W (conv) or N (linear). Each slot's
 * sparsifier carries its own axis, relative to the matrix as stored:
 * <ul>
 * <li>{@code w}: Eq. 1 operand S(W), 2:4 along K (axis 1 of W);</li>
 * <li>{@code wt}: Eq. 2 operand S(W^T), 2:4 along Cout (axis 0 of W), taken from dense W or, when
 *     {@code wtFromSparse}, from S(W) (the authors' S_T(S(W)));</li>
 * <li>{@code dyEq2}: dY in Eq. 2, along Cout (axis 0); {@code dyEq3}: dY in Eq. 3, along cols (axis 1);</li>
 * <li>{@code xt}: X^T in Eq. 3, along cols (axis 1); {@link Sparsifier.Fixed24} there means Eq. 7 per
 *     image (even positions of each H*W), computed as a dense GEMM over the kept half of K;</li>
 * <li>{@code ir}: Information Restoration, G = dY + coeff * shift(dY) along H*W before Eq. 3, or null.</li>
 * </ul>
 * The straight-through estimator is implicit: the Eq. 3 result is W's gradient. SR-STE's decay
 * lambda*(W - S(W)) is the optimizer's part ({@code fst4j.nn.SGD}); {@link #decaysPruned()} says whether
 * this configuration asks for it.
 */
public record SparseConfig(String name, Sparsifier w, Sparsifier wt, boolean wtFromSparse,
                           Sparsifier dyEq2, Sparsifier dyEq3, Sparsifier xt, Shift ir) {

    /** The gradient shift of Eq. 8-10: out[j] = dY[j] + coeff * dY[j + direction] within each H*W. */
    public record Shift(float coeff, int direction, boolean circular) {
        public Shift {
            if (direction != 1 && direction != -1) throw new IllegalArgumentException("shift direction must be +1 or -1, got " + direction);
        }
        public static final Shift PAPER = new Shift(Restoration.PAPER_COEFF, Restoration.PAPER_SHIFT, false);
        public static final Shift AUTHORS = new Shift(Restoration.AUTHORS_COEFF, Restoration.AUTHORS_SHIFT, true);
    }

    private static final Sparsifier DENSE_SLOT = new Sparsifier.Dense();

    public SparseConfig {
        if (name == null || w == null || wt == null || dyEq2 == null || dyEq3 == null || xt == null)
            throw new IllegalArgumentException("every slot of a SparseConfig needs a sparsifier (use Sparsifier.Dense)");
    }

    /**
     * True when SR-STE's decay of pruned weights applies to this configuration: its W rule is a magnitude rule
     * ({@link Sparsifier.Magnitude24}, {@link Sparsifier.SortMagnitude24}, {@link Sparsifier.MagnitudeNM}), whose S(W) the
     * decay pass ({@code fst4j.nn.SrSte}) recomputes from W. Not for TSM's transposable mask, a fixed pattern or a
     * {@link Sparsifier.Custom} rule: the pass leaves those undecayed, and the trainer and the experiments' tables said
     * it decayed them (a TSM row labelled with SR-STE's lambda).
     */
    public boolean decaysPruned() {
        return w instanceof Sparsifier.Magnitude24 || w instanceof Sparsifier.SortMagnitude24 || w instanceof Sparsifier.MagnitudeNM;
    }

    public boolean isDense() {
        return w instanceof Sparsifier.Dense && wt instanceof Sparsifier.Dense && !wtFromSparse && dyEq2 instanceof Sparsifier.Dense
                && dyEq3 instanceof Sparsifier.Dense && xt instanceof Sparsifier.Dense && ir == null;
    }

    public SparseConfig withName(String n) { return new SparseConfig(n, w, wt, wtFromSparse, dyEq2, dyEq3, xt, ir); }
    public SparseConfig withW(Sparsifier s) { return new SparseConfig(name, s, wt, wtFromSparse, dyEq2, dyEq3, xt, ir); }
    public SparseConfig withWt(Sparsifier s) { return new SparseConfig(name, w, s, wtFromSparse, dyEq2, dyEq3, xt, ir); }
    public SparseConfig withDyEq2(Sparsifier s) { return new SparseConfig(name, w, wt, wtFromSparse, s, dyEq3, xt, ir); }
    public SparseConfig withDyEq3(Sparsifier s) { return new SparseConfig(name, w, wt, wtFromSparse, dyEq2, s, xt, ir); }
    public SparseConfig withXt(Sparsifier s) { return new SparseConfig(name, w, wt, wtFromSparse, dyEq2, dyEq3, s, ir); }
    public SparseConfig withIr(Shift s) { return new SparseConfig(name, w, wt, wtFromSparse, dyEq2, dyEq3, xt, s); }
    public SparseConfig withWtFromSparse(boolean b) { return new SparseConfig(name, w, wt, b, dyEq2, dyEq3, xt, ir); }

    /**
     * This configuration with its W slots (S(W) of Eq. 1 and S(W^T) of Eq. 2, each along its own axis) pruned by magnitude
     * at pattern nm instead of 2:4 ({@link Sparsifier.MagnitudeNM}, on the dense-masked path); the other slots keep their
     * rules, as the activation and gradient masks (the fixed Eq. 7 X^T mask, the sorted S(dY) and S(X^T) of Table 1) are
     * 2:4 by definition. At 2:4 this is the configuration itself (Magnitude24 and its kernels, the same bits). Refused
     * where W is not pruned by magnitude (dense, a transposable mask, a rule of one's own), naming the rule.
     */
    public SparseConfig withPattern(NM nm) {
        if (nm == null) throw new IllegalArgumentException("the N:M pattern is null (NM.TWO_FOUR for 2:4)");
        if (nm.isTwoFour()) return this;
        Sparsifier sw = magnitudeAt(w, nm);
        if (sw == null) throw new IllegalArgumentException("N:M " + nm + " does not apply to " + name + ": its W in Eq. 1 is "
                + (w instanceof Sparsifier.Dense ? "dense" : "pruned by " + w + ", not by magnitude 2:4") + "; only magnitude-pruned W and W^T take a pattern");
        Sparsifier swt = wt instanceof Sparsifier.Dense ? wt : magnitudeAt(wt, nm);
        if (swt == null) throw new IllegalArgumentException("N:M " + nm + " does not apply to " + name + ": its W^T in Eq. 2 is pruned by " + wt
                + ", not by magnitude 2:4");
        return new SparseConfig(name, sw, swt, wtFromSparse, dyEq2, dyEq3, xt, ir);
    }

    /** rule at nm along its axis where it is a magnitude rule of W (2:4 or N:M already), else null. */
    private static Sparsifier magnitudeAt(Sparsifier rule, NM nm) {
        return switch (rule) {
            case Sparsifier.Magnitude24 m -> Sparsifier.magnitude(nm, m.axis());
            case Sparsifier.MagnitudeNM m -> Sparsifier.magnitude(nm, m.axis());
            default -> null;
        };
    }

    /** The method's configuration with its W slots at pattern nm ({@link Method#config(long, NM)}). */
    public static SparseConfig of(Method method, NM nm) { return method.config(0, nm); }

    /**
     * One change at a time between the paper's FST x3 and the authors' public code (fst-method.md), applied on top of a
     * method to each pruned layer's configuration: the authors' four fixed activation patterns drawn at random per chunk
     * instead of Eq. 7's one, their 0.03 circular shift instead of IR's shift-and-add, or S(W^T) pruned from S(W) instead
     * of from W. Written after the method with a '+': {@code fst3_ir+patterns}, {@code fst3_ir+shift0.03+wt-from-sw}.
     */
    public enum Variant {
        PATTERNS("patterns"),
        SHIFT003("shift0.03"),
        WT_FROM_SW("wt-from-sw");

        /** How the variant is written after a method name. */
        public final String tag;

        Variant(String tag) { this.tag = tag; }

        /** cfg with this change; layerSeed seeds the random patterns of that layer (distinct per layer and run). */
        public SparseConfig apply(SparseConfig cfg, long layerSeed) {
            return switch (this) {
                case PATTERNS -> cfg.withXt(new AuthorsFixed24(1, layerSeed));
                case SHIFT003 -> cfg.withIr(Shift.AUTHORS);
                case WT_FROM_SW -> cfg.withWtFromSparse(true);
            };
        }

        /**
         * Null when this variant changes what cfg computes, else why not: each replaces a slot the configuration must
         * already use (the fixed X^T mask, the IR shift, a pruned W^T), and none is applied twice.
         */
        public String whyNot(SparseConfig cfg) {
            return switch (this) {
                case PATTERNS -> cfg.xt() instanceof AuthorsFixed24 ? "already draws the authors' random patterns"
                        : cfg.xt() instanceof Sparsifier.Fixed24 ? null : "has no fixed X^T mask in Eq. 3 to replace";
                case SHIFT003 -> cfg.ir() == null ? "has no Information Restoration shift to replace"
                        : cfg.ir().equals(Shift.AUTHORS) ? "already uses the 0.03 circular shift" : null;
                case WT_FROM_SW -> cfg.wt() instanceof Sparsifier.Dense ? "does not prune W^T in Eq. 2"
                        : cfg.wtFromSparse() ? "already prunes W^T from S(W)" : null;
            };
        }

        public static Variant parse(String s) {
            for (Variant v : values()) if (v.tag.equalsIgnoreCase(s.trim())) return v;
            throw new IllegalArgumentException("unknown variant '" + s + "'; known: " + java.util.Arrays.stream(values()).map(v -> v.tag).toList());
        }
    }

    /**
     * A method with variants applied on top ({@code fst3_ir+patterns}), kept in the enum's order whatever order they were
     * written in (each changes its own slot), a repeated one once ({@link #parse} refuses a repeat as a typo); what the
     * trainer, the experiments and checkpoints name a run by.
     */
    public record Recipe(Method method, java.util.List<Variant> variants) {
        public Recipe {
            if (method == null) throw new IllegalArgumentException("method is null");
            // each variant changes its own slot, so their order does not matter: one canonical order, one name per recipe
            variants = variants.stream().sorted().distinct().toList();
            SparseConfig c = method.config();
            for (Variant v : variants) {
                String why = v.whyNot(c);
                if (why != null)
                    throw new IllegalArgumentException("variant '" + v.tag + "' does not apply to " + key(method, variants) + ": its configuration " + why);
                c = v.apply(c, 0);
            }
        }

        public static Recipe of(Method m) { return new Recipe(m, java.util.List.of()); }

        /** Parses "fst3_ir", "fst3_ir+patterns+shift0.03", ... */
        public static Recipe parse(String s) {
            String[] parts = s.trim().split("\\+", -1);
            java.util.List<Variant> vs = new java.util.ArrayList<>();
            for (int i = 1; i < parts.length; i++) {
                Variant v = Variant.parse(parts[i]);
                if (vs.contains(v)) throw new IllegalArgumentException("variant '" + v.tag + "' given twice in '" + s + "'");
                vs.add(v);
            }
            return new Recipe(Method.parse(parts[0]), vs);
        }

        /** The name: the method in lower case, then "+tag" per variant. */
        public String key() { return key(method, variants); }

        private static String key(Method m, java.util.List<Variant> vs) {
            StringBuilder sb = new StringBuilder(m.name().toLowerCase(Locale.ROOT));
            for (Variant v : vs) sb.append('+').append(v.tag);
            return sb.toString();
        }

        /**
         * cfg (a layer's configuration) with every variant applied that changes it ({@link Variant#whyNot}): a dense layer
         * keeps its configuration, and a layer without the slot a variant replaces (one set by {@code Models.override},
         * say) keeps that slot.
         */
        public SparseConfig apply(SparseConfig cfg, long layerSeed) {
            boolean changed = false;
            for (Variant v : variants)
                if (!cfg.isDense() && v.whyNot(cfg) == null) { cfg = v.apply(cfg, layerSeed); changed = true; }
            return changed ? cfg.withName(key()) : cfg;
        }

        @Override public String toString() { return key(); }
    }

    /**
     * The ready-made configurations. Each call of {@link #config()} makes fresh sparsifier instances, since
     * some carry per-layer state (TSM's mask refresh, the authors' random patterns): give each layer its own call (an nn
     * layer refuses a configuration whose stateful sparsifier another layer holds).
     */
    public enum Method {
        /** No pruning. */
        DENSE,
        /** S(W) forward only; dense backward; SR-STE decay (Zhou et al. 2021). */
        SR_STE,
        /** Transposable 2:4 mask for W and W^T, refreshed every 40 steps (Hubara et al. 2021). */
        TSM,
        /** Table 1: S(W^T) dY in Eq. 2, S(dY) X^T in Eq. 3. */
        WG,
        /** Table 1: S(W^T) dY in Eq. 2, dY S(X^T) (sorted) in Eq. 3. */
        WX,
        /** Table 1: W^T S(dY) in Eq. 2, S(dY) X^T in Eq. 3. */
        GG,
        /** Table 1: W^T S(dY) in Eq. 2, dY S(X^T) in Eq. 3. */
        GX,
        /** FST x2: S(W) in Eq. 1, separately pruned S(W^T) in Eq. 2. */
        FST2,
        /** FST2 plus the fixed Eq. 7 mask on X^T in Eq. 3, without Information Restoration. */
        FST3,
        /** The paper's FST x3: FST3 plus the gradient shift (coefficient 1, next position). */
        FST3_IR,
        /** The authors' public code: 0.03 * roll(dY, 1) circular, four random fixed patterns, S_T(S(W)). */
        FST_CODE,
        /**
         * FST3_IR with the authors' four random fixed activation patterns in place of Eq. 7's one (and nothing else of
         * their code): the most accurate FST x3 of {@code fst4j experiment ir} on Fashion-MNIST (docs/results.md).
         */
        FST3_IR_PATTERNS,
        /**
         * meProp (Sun et al. 2017; the paper's Table 3): dense weights, the output gradient dY pruned unstructured to its
         * larger half by magnitude in each column (over Cout, at the density of 2:4), in Eq. 2 and Eq. 3 alike. The
         * fraction is this library's choice (the paper does not give meProp's k). Not accelerable: a masked dense GEMM.
         */
        MEPROP,
        /**
         * ASP (the paper's Table 3, "prune a dense model, fine-tune"): dense until the trainer fixes each layer's
         * magnitude 2:4 mask of W, at half of its steps (fst4j.nn.Asp), then W under that frozen mask in Eq. 1 and its
         * transpose in Eq. 2; no SR-STE decay.
         */
        ASP,
        /**
         * ReSprop (Goli and Aamodt 2020; the paper's Table 3): dense weights; each convolution of the preset replaces its
         * output gradient by the previous step's sample of one image plus the differences above an adaptive threshold
         * (15 % of them, after the authors' warm-up over the first tenth of a trainer's run), in Eq. 2 and Eq. 3 alike
         * (fst4j.nn.ReSprop, installed by the layer). Not accelerable.
         */
        RESPROP;

        public SparseConfig config() { return config(0); }

        /** seed feeds the random pattern choice of FST_CODE and FST3_IR_PATTERNS (other methods ignore it). */
        public SparseConfig config(long seed) {
            Sparsifier d = DENSE_SLOT;
            Sparsifier sw = new Sparsifier.Magnitude24(1), swt = new Sparsifier.Magnitude24(0);
            String n = name().toLowerCase(Locale.ROOT);
            return switch (this) {
                case DENSE -> new SparseConfig(n, d, d, false, d, d, d, null);
                case SR_STE -> new SparseConfig(n, sw, d, false, d, d, d, null);
                case TSM -> new SparseConfig(n, new Transposable24(40), d, true, d, d, d, null);
                case WG -> new SparseConfig(n, sw, swt, false, d, new Sparsifier.SortMagnitude24(1), d, null);
                case WX -> new SparseConfig(n, sw, swt, false, d, d, new Sparsifier.SortMagnitude24(1), null);
                case GG -> new SparseConfig(n, sw, d, false, new Sparsifier.SortMagnitude24(0), new Sparsifier.SortMagnitude24(1), d, null);
                case GX -> new SparseConfig(n, sw, d, false, new Sparsifier.SortMagnitude24(0), d, new Sparsifier.SortMagnitude24(1), null);
                case FST2 -> new SparseConfig(n, sw, swt, false, d, d, d, null);
                case FST3 -> new SparseConfig(n, sw, swt, false, d, d, new Sparsifier.Fixed24(1), null);
                case FST3_IR -> new SparseConfig(n, sw, swt, false, d, d, new Sparsifier.Fixed24(1), Shift.PAPER);
                case FST_CODE -> new SparseConfig(n, sw, swt, true, d, d, new AuthorsFixed24(1, seed), Shift.AUTHORS);
                case FST3_IR_PATTERNS -> new SparseConfig(n, sw, swt, false, d, d, new AuthorsFixed24(1, seed), Shift.PAPER);
                case MEPROP -> new SparseConfig(n, d, d, false, new Sparsifier.TopK(0, 0.5), new Sparsifier.TopK(0, 0.5), d, null);
                case ASP, RESPROP -> new SparseConfig(n, d, d, false, d, d, d, null);
            };
        }

        /**
         * {@link #config(long)} with the weights pruned at pattern nm ({@link SparseConfig#withPattern}); refused for the
         * methods that prune no weight by magnitude ({@link #whyNoPattern}).
         */
        public SparseConfig config(long seed, NM nm) {
            if (nm == null) throw new IllegalArgumentException("the N:M pattern is null (NM.TWO_FOUR for 2:4)");
            String why = nm.isTwoFour() ? null : whyNoPattern();
            if (why != null) throw new IllegalArgumentException("N:M " + nm + " has no meaning for " + name().toLowerCase(Locale.ROOT) + ": " + why);
            return config(seed).withPattern(nm);
        }

        /** Null where this method prunes its weights by magnitude and so takes an N:M pattern ({@link #config(long, NM)}), else why not. */
        public String whyNoPattern() {
            return switch (this) {
                case DENSE -> "it prunes no weight";
                case TSM -> "its transposable mask is 2:4 along both axes by definition";
                case MEPROP, RESPROP -> "it prunes the output gradient, not the weights";
                case ASP -> "its one-shot mask of the trained dense weights is 2:4 (fst4j.nn.Asp)";
                default -> null;
            };
        }

        /** Parses "fst3_ir", "FST3-IR", "sr-ste", ... */
        public static Method parse(String s) {
            String k = s.trim().toUpperCase(Locale.ROOT).replace('-', '_');
            try {
                return valueOf(k);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown sparsity method '" + s + "'; known: " + java.util.Arrays.toString(values()).toLowerCase(Locale.ROOT));
            }
        }
    }
}
