package fst4j.nn.train;

import fst4j.nn.Asp;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.Optimizer;
import fst4j.nn.data.DataLoader;
import fst4j.nn.io.SafeTensors;
import fst4j.sparse.StatefulSparsifier;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiFunction;
import java.util.function.Consumer;

/**
 * A training checkpoint of any {@link Module}, for a training loop of one's own (the {@link Trainer} writes its own
 * through this class): what torch.save({'model': m.state_dict(), 'optim': opt.state_dict(), ...}) and the matching
 * load_state_dict calls do, but the parts that an exact resume needs are not left to be remembered, and a file that
 * does not fit is refused without changing anything.
 *
 * <pre>{@code
 * Checkpoint ckpt = Checkpoint.of(model).optimizer(opt).loader(loader);   // the same parts for save and load
 * ckpt.save(Path.of("run/ckpt.safetensors"), new Checkpoint.Info(step, Map.of("note", "warm-up done"), Map.of()));
 * // later, with the model, optimizer and loader built as before:
 * long step = ckpt.load(Path.of("run/ckpt.safetensors")).step();        // all or nothing
 * }</pre>
 *
 * <p>What a file holds (safetensors, written atomically; the layout the trainer's checkpoints have always had):
 * <ul>
 * <li>the model's state dict ({@link Module#stateDict}: parameters and buffers) as tensors "model.NAME";
 * <li>the state of every stateful sparsifier of its layers ({@link Models#statefulSparsifiers}: TSM's cached mask, the
 *     authors' pattern draws, ASP's frozen masks, ReSprop's samples, a rule of one's own) as int64 "sparsity.LAYER.SLOT":
 *     they are part of the model, because without them a resumed run prunes otherwise;
 * <li>with {@link #optimizer}: the optimizer's state dict ({@link Optimizer#stateDict}), tensors "optim.KIND.INDEX" and
 *     int64 counts "optim.NAME";
 * <li>with {@link #loader}: the data loader's position ({@link DataLoader#state}) as int64 "loader";
 * <li>the {@link Info}: the step (int64 "step"), string metadata of one's own (beside "format" = {@value #FORMAT}) and
 *     int64 counters of one's own (under their own names).
 * </ul>
 *
 * <p>{@link #load} restores the parts this checkpoint was given and refuses a file that lacks one of them; a part the
 * file has and this checkpoint was not given is not read (as taking 'model' alone out of torch.load's dict, to evaluate),
 * so give the same parts to save and load. It checks everything before it changes anything: the model's keys and shapes,
 * the optimizer's state ({@link Optimizer#checkStateDict}), the loader's position, and every stateful sparsifier having
 * its state and every state its sparsifier. What can only be checked by applying it (a rule's own check of its words,
 * ASP's masks put on layers still dense) is undone when something later fails. Any refusal is a
 * {@link CheckpointException} naming the file and the problem.
 *
 * <p>Hyper-parameters (learning rate, betas, the model's architecture) are not part of it: they are the code's. The
 * model must be built as it was when saved, with the same sparsity per layer; put such settings in the metadata and
 * compare them in the check of {@link #load(Path, Consumer)} to have them refused.
 */
public final class Checkpoint {
    /** The "format" metadata of every checkpoint (the trainer's and one's own alike). */
    public static final String FORMAT = "fst4j-checkpoint-1";
    static final String MODEL = "model.", OPTIM = "optim.", SPARSITY = "sparsity.", STEP = "step", LOADER = "loader", FORMAT_KEY = "format";

    private final Module model;
    private Optimizer opt;
    private DataLoader loader;
    /** Appended to a refused model state's message (the trainer says what its model is built for). */
    private String modelNote = "";

    private Checkpoint(Module model) { this.model = Objects.requireNonNull(model, "model"); }

    /** A checkpoint of model's state and its layers' sparsifier states; add the optimizer and the loader to resume training. */
    public static Checkpoint of(Module model) { return new Checkpoint(model); }

    /** Saves and restores opt's state dict too (any {@link Optimizer}). */
    public Checkpoint optimizer(Optimizer opt) {
        this.opt = Objects.requireNonNull(opt, "optimizer");
        return this;
    }

    /** Saves and restores the loader's position too, so that a resumed run sees the batches the uninterrupted one would. */
    public Checkpoint loader(DataLoader loader) {
        this.loader = Objects.requireNonNull(loader, "loader");
        return this;
    }

    Checkpoint modelNote(String note) {
        modelNote = note;
        return this;
    }

    /**
     * What a checkpoint holds besides the model's, optimizer's and loader's state: the step (of one's own counting: the
     * trainer's is the number of steps done), string metadata and int64 counters (an epoch, an RNG's state words, ...).
     * Names that the parts use are refused: metadata "format"; counters "step", "loader" and any name starting
     * "model.", "optim." or "sparsity.". The maps are unmodifiable copies.
     */
    public record Info(long step, Map<String, String> metadata, Map<String, long[]> counters) {
        public Info {
            if (step < 0) throw new IllegalArgumentException("the step is " + step + ", not >= 0");
            Map<String, String> m = new LinkedHashMap<>();
            for (var e : Objects.requireNonNull(metadata, "metadata").entrySet()) {
                if (e.getKey() == null || e.getValue() == null) throw new IllegalArgumentException("metadata " + e.getKey() + " = " + e.getValue() + ": null");
                if (e.getKey().equals(FORMAT_KEY)) throw new IllegalArgumentException("metadata 'format' is the checkpoint's own (" + FORMAT + ")");
                if (e.getKey().startsWith(fst4j.nn.io.SafeTensors.CRC_PREFIX))
                    throw new IllegalArgumentException("metadata '" + e.getKey() + "': keys starting with " + fst4j.nn.io.SafeTensors.CRC_PREFIX
                            + " hold the file's checksums");
                m.put(e.getKey(), e.getValue());
            }
            Map<String, long[]> c = new LinkedHashMap<>();
            for (var e : Objects.requireNonNull(counters, "counters").entrySet()) {
                String k = e.getKey();
                if (k == null || e.getValue() == null) throw new IllegalArgumentException("counter " + k + ": null");
                if (k.equals(STEP) || k.equals(LOADER) || k.startsWith(MODEL) || k.startsWith(OPTIM) || k.startsWith(SPARSITY))
                    throw new IllegalArgumentException("counter name '" + k + "' is the checkpoint's own (step, loader, model.*, optim.*, sparsity.*)");
                c.put(k, e.getValue().clone());
            }
            metadata = Collections.unmodifiableMap(m);
            counters = Collections.unmodifiableMap(c);
        }

        /** Only a step. */
        public static Info of(long step) { return new Info(step, Map.of(), Map.of()); }

        /** The counter called name (a copy), or IllegalArgumentException naming the counters there are. */
        public long[] counter(String name) {
            long[] v = counters.get(name);
            if (v == null) throw new IllegalArgumentException("no counter '" + name + "'; counters: " + counters.keySet());
            return v.clone();
        }
    }

    /** {@link #save(Path, Info)} with only a step. */
    public void save(Path file, long step) throws IOException { save(file, Info.of(step)); }

    /**
     * Writes the state of the parts and info to file, atomically (a temporary file in the same folder moved over it, so
     * a crash leaves the old checkpoint or the new one); parent folders are created. The tensors are read as they are
     * now: call it between steps.
     */
    public void save(Path file, Info info) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        Map<String, long[]> longs = new LinkedHashMap<>();
        model.stateDict().forEach((k, v) -> tensors.put(MODEL + k, v));
        longs.put(STEP, new long[]{info.step()});
        if (opt != null) {
            Optimizer.State os = opt.stateDict();
            os.tensors().forEach((k, v) -> tensors.put(OPTIM + k, v));
            os.counts().forEach((k, v) -> longs.put(OPTIM + k, v));   // SGD: "optim.steps", as before the Optimizer interface
        }
        if (loader != null) longs.put(LOADER, loader.state().toLongs());
        Models.statefulSparsifiers(model).forEach((k, sp) -> longs.put(SPARSITY + k, sp.exportState()));
        longs.putAll(info.counters());
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put(FORMAT_KEY, FORMAT);
        meta.putAll(info.metadata());
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        SafeTensors.write(file, tensors, longs, meta);
    }

    /** The step, metadata and counters of a checkpoint, without loading anything; {@link CheckpointException} if unusable. */
    public static Info read(Path file) {
        try (Scope s = Scope.open(); SafeTensors.Contents c = open(file)) {
            return info(c);
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CheckpointException(file, e.getMessage(), e);
        }
    }

    /** {@link #load(Path, Consumer)} without a check of one's own. */
    public Info load(Path file) { return load(file, info -> {}); }

    /**
     * Restores the parts from file, all or nothing (see the class comment), and returns its {@link Info}. check sees the
     * info first, before anything is checked or changed; it refuses the file by throwing IllegalArgumentException with
     * the reason (a metadata setting that is not this run's, say), which comes back as a {@link CheckpointException}.
     * Layers of the ASP preset still dense take the frozen masks the file holds for them.
     */
    public Info load(Path file, Consumer<Info> check) {
        return load(file, check, (info, int64s) -> aspMasksInFile(int64s));
    }

    /**
     * load with prepare in place of the ASP rule above: it runs after every check that needs no change, before the
     * sparsifier states are matched with their rules, and returns what undoes it (or null).
     */
    Info load(Path file, Consumer<Info> check, BiFunction<Info, Map<String, long[]>, Runnable> prepare) {
        try (Scope s = Scope.open(); SafeTensors.Contents c = open(file)) {
            Info info = info(c);
            check.accept(info);
            Map<String, Tensor> state = new HashMap<>(), optTensors = new LinkedHashMap<>();
            for (var e : c.tensors().entrySet()) {
                String k = e.getKey();
                if (k.startsWith(MODEL)) state.put(k.substring(MODEL.length()), e.getValue());
                else if (k.startsWith(OPTIM)) optTensors.put(k.substring(OPTIM.length()), e.getValue());
                else throw new IllegalArgumentException("unexpected tensor " + k);
            }
            Optimizer.State optState = null;
            if (opt != null) {
                Map<String, long[]> optCounts = new LinkedHashMap<>();
                c.int64s().forEach((k, v) -> { if (k.startsWith(OPTIM)) optCounts.put(k.substring(OPTIM.length()), v); });
                if (optTensors.isEmpty() && optCounts.isEmpty())
                    throw new IllegalArgumentException("it holds no optimizer state (saved without Checkpoint.optimizer), and this checkpoint has a "
                            + opt.getClass().getSimpleName() + " to restore");
                optState = new Optimizer.State(optTensors, optCounts);
            }
            DataLoader.State ls = null;
            if (loader != null) {
                if (!c.int64s().containsKey(LOADER))
                    throw new IllegalArgumentException("it holds no data loader state (saved without Checkpoint.loader), and this checkpoint has a loader to restore");
                ls = DataLoader.State.fromLongs(c.int64(LOADER));
            }
            // the model before the optimizer's state: a model built for other images said only "momentum buffer 0 has the
            // wrong shape"
            try {
                model.checkStateDict(state);
            } catch (IllegalArgumentException e) {
                if (modelNote.isEmpty()) throw e;
                throw new IllegalArgumentException(e.getMessage() + " " + modelNote, e);
            }
            if (opt != null) opt.checkStateDict(optState);
            if (loader != null) loader.check(ls);
            // all or nothing: what cannot be checked first (ASP's placeholders, each rule's own state check) is undone on failure
            List<Runnable> undo = new ArrayList<>();
            try {
                Runnable back = prepare.apply(info, c.int64s());
                if (back != null) undo.add(back);
                importSparsifierStates(c.int64s(), undo);
            } catch (RuntimeException | Error e) {
                for (int i = undo.size() - 1; i >= 0; i--) {
                    try { undo.get(i).run(); } catch (RuntimeException u) { e.addSuppressed(u); }
                }
                throw e;
            }
            model.loadStateDict(state);   // checked above: from here on nothing refuses
            if (opt != null) opt.loadStateDict(optState);
            if (loader != null) loader.restore(ls);
            return info;
        } catch (CheckpointException e) {
            throw e;
        } catch (RuntimeException e) {
            throw new CheckpointException(file, e.getMessage(), e);
        }
    }

    /** Every stateful rule of the model takes its words from the file, and every state in the file has its rule; each import is added to undo. */
    private void importSparsifierStates(Map<String, long[]> int64s, List<Runnable> undo) {
        Map<String, StatefulSparsifier> rules = new LinkedHashMap<>();
        Models.statefulSparsifiers(model).forEach((k, st) -> rules.put(SPARSITY + k, st));
        for (String k : int64s.keySet())
            if (k.startsWith(SPARSITY) && !rules.containsKey(k))
                throw new IllegalArgumentException("it holds the state of sparsifier " + k.substring(SPARSITY.length()) + ", a slot with no stateful rule in"
                        + " this model (a custom rule, a per-layer override or a layer on the ReSprop preset, not installed before load?)");
        for (String k : rules.keySet())
            if (!int64s.containsKey(k)) throw new IllegalArgumentException("missing sparsifier state " + k);
        for (var e : rules.entrySet()) {
            StatefulSparsifier r = e.getValue();
            Runnable back = r.restorer();
            r.importState(int64s.get(e.getKey()));
            undo.add(back);
        }
    }

    /**
     * The ASP rule of {@link #load(Path, Consumer)}: the layers of the preset still dense whose frozen mask the file holds
     * ("sparsity.LAYER.w", saved after Asp.prune) get it; returns what puts them back dense, or null if none had one.
     */
    private Runnable aspMasksInFile(Map<String, long[]> int64s) {
        Runnable back = Models.sparsityRestorer(model);
        try {
            return Asp.restore(model, int64s) == 0 ? null : back;
        } catch (RuntimeException | Error e) {   // a malformed mask after others were put on
            back.run();
            throw e;
        }
    }

    /** The step, metadata (but "format") and counters (the int64 entries that are not a part's) of an open file. */
    private static Info info(SafeTensors.Contents c) {
        long[] st = c.int64(STEP);
        if (st.length != 1) throw new IllegalArgumentException("its step holds " + st.length + " int64 values, expected 1");
        Map<String, String> meta = new LinkedHashMap<>(c.metadata());
        meta.remove(FORMAT_KEY);
        Map<String, long[]> counters = new LinkedHashMap<>();
        c.int64s().forEach((k, v) -> {
            if (!k.equals(STEP) && !k.equals(LOADER) && !k.startsWith(OPTIM) && !k.startsWith(SPARSITY) && !k.startsWith(MODEL)) counters.put(k, v);
        });
        return new Info(st[0], meta, counters);
    }

    /** The file read and its format checked; {@link CheckpointException} naming the file otherwise. The caller closes it. */
    static SafeTensors.Contents open(Path file) {
        SafeTensors.Contents c;
        try {
            c = SafeTensors.read(file);
        } catch (IOException e) {   // a directory, no such file, permission denied: in words, not an exception's name
            throw new CheckpointException(file, Files.isDirectory(file) ? "it is a directory (a run's checkpoints are <out>/<method>/final.safetensors"
                    + " and checkpoint.safetensors)" : e instanceof java.nio.file.FileSystemException ? fst4j.nn.io.IoText.reason(e)
                    : e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new CheckpointException(file, e.getMessage(), e);
        }
        if (!FORMAT.equals(c.metadata().get(FORMAT_KEY))) {
            c.close();
            throw new CheckpointException(file, "not an fst4j training checkpoint (metadata format is " + c.metadata().get(FORMAT_KEY) + ", expected " + FORMAT + ")", null);
        }
        return c;
    }
}
