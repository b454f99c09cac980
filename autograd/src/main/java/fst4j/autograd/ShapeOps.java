package fst4j.autograd;

import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * torch.Tensor's shape ops on Vars (Var.squeeze ... repeat, NN.pad). All but flip and reflect / replicate padding are
 * composites of reshape, slice, expand and cat, so they run wherever those do (CUDA included) and need no backward of
 * their own; those are index maps ({@link IndexMap}: a loop on the CPU, a gather kernel on CUDA).
 */
final class ShapeOps {
    private ShapeOps() {}

    /** torch.squeeze: no axes squeezes every size-1 axis; named axes of another size are left as they are (torch's). */
    static Var squeeze(Var x, int... axes) {
        int[] s = x.shape();
        boolean[] drop = new boolean[s.length];
        if (axes.length == 0) for (int i = 0; i < s.length; i++) drop[i] = s[i] == 1;
        for (int a : axes) {
            int d = s.length == 0 ? scalarAxis(a, "squeeze") : Shape.axis(a, s.length);
            if (s.length > 0) drop[d] |= s[d] == 1;
        }
        int[] out = new int[s.length];
        int n = 0;
        for (int i = 0; i < s.length; i++) if (!drop[i]) out[n++] = s[i];
        return x.reshape(Arrays.copyOf(out, n));
    }

    /** A rank-0 tensor takes axis 0 or -1 (torch's dim wrapping treats it as rank 1). */
    private static int scalarAxis(int a, String op) {
        if (a != 0 && a != -1) throw new IllegalArgumentException(op + ": axis " + a + " out of range for rank 0 (0 or -1)");
        return 0;
    }

    /** torch.unsqueeze: a new size-1 axis at axis in [-(rank + 1), rank]. */
    static Var unsqueeze(Var x, int axis) {
        int[] s = x.shape();
        int a = axis < 0 ? axis + s.length + 1 : axis;
        if (a < 0 || a > s.length)
            throw new IllegalArgumentException("unsqueeze: axis " + axis + " out of range for rank " + s.length + " (-" + (s.length + 1) + " to " + s.length + ")");
        int[] out = new int[s.length + 1];
        for (int i = 0, j = 0; i < out.length; i++) out[i] = i == a ? 1 : s[j++];
        return x.reshape(out);
    }

    /** torch.flatten(start, end): axes start..end (inclusive, negative from the end) merged; a scalar becomes [1]. */
    static Var flatten(Var x, int start, int end) {
        int[] s = x.shape();
        if (s.length == 0) { scalarAxis(start, "flatten"); scalarAxis(end, "flatten"); return x.reshape(1); }
        int a = Shape.axis(start, s.length), b = Shape.axis(end, s.length);
        if (a > b) throw new IllegalArgumentException("flatten: start axis " + start + " comes after end axis " + end + " (rank " + s.length + ")");
        int[] out = new int[s.length - (b - a)];
        long m = 1;
        for (int i = a; i <= b; i++) m *= s[i];
        for (int i = 0, j = 0; i < s.length; i++) {
            if (i < a || i > b) out[j++] = s[i];
            else if (i == a) out[j++] = Math.toIntExact(m);
        }
        return x.reshape(out);
    }

    /** torch.unflatten(axis, sizes): axis split into sizes (one of them may be -1), whose product must be its size. */
    static Var unflatten(Var x, int axis, int... sizes) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        if (sizes.length == 0) throw new IllegalArgumentException("unflatten: no sizes for axis " + axis);
        int infer = -1;
        long known = 1;
        for (int i = 0; i < sizes.length; i++) {
            if (sizes[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("unflatten: only one size may be -1, got " + Arrays.toString(sizes));
                infer = i;
            } else if (sizes[i] < 0) throw new IllegalArgumentException("unflatten: negative size in " + Arrays.toString(sizes));
            else known *= sizes[i];
        }
        int[] sz = sizes.clone();
        if (infer >= 0) {
            if (known == 0 || s[a] % known != 0)
                throw new IllegalArgumentException("unflatten: sizes " + Arrays.toString(sizes) + " do not divide axis " + a + " of size " + s[a]);
            sz[infer] = (int) (s[a] / known);
        } else if (known != s[a])
            throw new IllegalArgumentException("unflatten: sizes " + Arrays.toString(sizes) + " multiply to " + known + ", not axis " + a + "'s size " + s[a]
                    + " (shape " + Shape.str(s) + ")");
        int[] out = new int[s.length - 1 + sz.length];
        System.arraycopy(s, 0, out, 0, a);
        System.arraycopy(sz, 0, out, a, sz.length);
        System.arraycopy(s, a + 1, out, a + sz.length, s.length - a - 1);
        return x.reshape(out);
    }

    /** torch.split(size, axis): pieces of size along axis, the last one shorter when size does not divide it. */
    static Var[] split(Var x, int size, int axis) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        if (size <= 0) throw new IllegalArgumentException("split: size must be positive, got " + size);
        if (s[a] == 0) return new Split(a, new int[]{0}).applyMulti(x);   // torch: one empty piece
        int[] sizes = new int[(int) ((s[a] + (long) size - 1) / size)];
        for (int i = 0; i < sizes.length; i++) sizes[i] = Math.min(size, s[a] - i * size);
        return new Split(a, sizes).applyMulti(x);
    }

    /** torch.split(sizes, axis): pieces of the given sizes, which must add up to the axis's size. */
    static Var[] split(Var x, int[] sizes, int axis) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        long total = 0;
        for (int n : sizes) {
            if (n < 0) throw new IllegalArgumentException("split: negative size in " + Arrays.toString(sizes));
            total += n;
        }
        if (total != s[a])
            throw new IllegalArgumentException("split: sizes " + Arrays.toString(sizes) + " add up to " + total + ", not axis " + a + "'s size " + s[a]
                    + " (shape " + Shape.str(s) + ")");
        return new Split(a, sizes).applyMulti(x);
    }

    /** torch.chunk(n, axis): split by ceil(size / n), so possibly fewer than n pieces; an empty axis gives n empty ones. */
    static Var[] chunk(Var x, int n, int axis) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        if (n <= 0) throw new IllegalArgumentException("chunk: number of chunks must be positive, got " + n);
        if (s[a] == 0) {
            Var[] out = new Var[n];
            for (int i = 0; i < n; i++) out[i] = x.slice(a, 0, 0);
            return out;
        }
        return split(x, (int) ((s[a] + (long) n - 1) / n), a);
    }

    /** torch.unbind(axis): the slices at each index along axis, that axis removed. */
    static Var[] unbind(Var x, int axis) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        int[] inner = new int[s.length - 1];
        for (int i = 0, j = 0; i < s.length; i++) if (i != a) inner[j++] = s[i];
        Var[] out = new Var[s[a]];
        for (int i = 0; i < s[a]; i++) out[i] = x.slice(a, i, i + 1).reshape(inner);
        return out;
    }

    /** torch.flip(axes): an index map; repeated axes are refused as torch's. */
    static Var flip(Var x, int... axes) {
        int[] s = x.shape();
        boolean[] f = new boolean[s.length];
        for (int ax : axes) {
            int d = Shape.axis(ax, s.length);
            if (f[d]) throw new IllegalArgumentException("flip: axis " + ax + " repeated in " + Arrays.toString(axes));
            f[d] = true;
        }
        long n = Shape.numel(s);
        int[] src = new int[Math.toIntExact(n)];
        long[] st = Shape.contiguousStrides(s);
        int[] idx = new int[s.length];
        for (int i = 0; i < src.length; i++) {
            long o = 0;
            for (int d = 0; d < s.length; d++) o += (f[d] ? s[d] - 1 - idx[d] : idx[d]) * st[d];
            src[i] = (int) o;
            for (int d = s.length - 1; d >= 0; d--) { if (++idx[d] < s[d]) break; idx[d] = 0; }
        }
        return new IndexMap("Flip", src, s).apply(x);
    }

    /** torch.roll(shift, axis): elements shifted by shift along axis (negative: backwards), wrapping round. */
    static Var roll(Var x, int shift, int axis) {
        int[] s = x.shape();
        int a = Shape.axis(axis, s.length);
        int n = s[a];
        int k = n == 0 ? 0 : (int) Math.floorMod((long) shift, (long) n);
        if (k == 0) return x.slice(a, 0, n);
        return Var.cat(a, x.slice(a, n - k, n), x.slice(a, 0, n - k));
    }

    /** torch.roll(shifts, axes): one roll per pair; no axes rolls the flattened tensor (shifts then holds one shift). */
    static Var roll(Var x, int[] shifts, int[] axes) {
        if (axes.length == 0) {
            if (shifts.length != 1) throw new IllegalArgumentException("roll: without axes, one shift is needed, got " + Arrays.toString(shifts));
            return roll(x.reshape(-1), shifts[0], 0).reshape(x.shape());
        }
        if (shifts.length != axes.length)
            throw new IllegalArgumentException("roll: " + shifts.length + " shifts for " + axes.length + " axes (" + Arrays.toString(shifts) + ", " + Arrays.toString(axes) + ")");
        Var y = x;
        for (int i = 0; i < axes.length; i++) y = roll(y, shifts[i], axes[i]);
        return y;
    }

    /**
     * torch.Tensor.repeat(reps): the tensor tiled reps[i] times along axis i, with leading axes added when reps is longer
     * than the rank. As a view [1, s0, 1, s1, ...] expanded to [r0, s0, r1, s1, ...] and reshaped (a copy): the expand's
     * backward sums the tiles' gradients.
     */
    static Var repeat(Var x, int... reps) {
        int[] s = x.shape();
        if (reps.length < s.length)
            throw new IllegalArgumentException("repeat: " + reps.length + " repeats for rank " + s.length + " (shape " + Shape.str(s) + "); give at least one per axis");
        for (int r : reps) if (r < 0) throw new IllegalArgumentException("repeat: negative repeat in " + Arrays.toString(reps));
        int k = reps.length, lead = k - s.length;
        int[] inter = new int[2 * k], expanded = new int[2 * k], out = new int[k];
        for (int i = 0; i < k; i++) {
            int d = i < lead ? 1 : s[i - lead];
            inter[2 * i] = 1; inter[2 * i + 1] = d;
            expanded[2 * i] = reps[i]; expanded[2 * i + 1] = d;
            long size = (long) reps[i] * d;
            if (size > Integer.MAX_VALUE)
                throw new IllegalArgumentException("repeat: axis " + i + " would have " + size + " elements (" + reps[i] + " x " + d
                        + "), past 2^31 - 1; shape " + Shape.str(s) + ", repeats " + Arrays.toString(reps));
            out[i] = (int) size;
        }
        return x.reshape(inter).expand(expanded).reshape(out);
    }

    /** Modes of {@link NN#pad}, as torch.nn.functional.pad's mode strings. */
    enum PadMode { CONSTANT, REFLECT, REPLICATE, CIRCULAR }

    /**
     * F.pad: pad = (left, right) of the last axis, then of the one before, ...; constant mode fills with value and crops
     * where a pad is negative. Reflect (the mirror image without the edge), replicate (the edge repeated) and circular
     * (the other end, wrapped round) are one index map over every padded axis at once ({@link #padIndexMap}): one gather
     * forward and one scatter-add backward, on the CPU or CUDA, where they were one slice node per padded element (or
     * per wrapped end) and a cat per axis. The values are those of torch's kernels either way (a pad only copies
     * elements); the gradient of an element read several times is its sources' sum in double, rounded once.
     */
    static Var pad(Var x, int[] pad, PadMode mode, double value) {
        int[] s0 = x.shape();
        if (pad.length % 2 != 0) throw new IllegalArgumentException("pad: padding " + Arrays.toString(pad) + " must have an even length (left, right per axis)");
        if (pad.length / 2 > s0.length)
            throw new IllegalArgumentException("pad: padding " + Arrays.toString(pad) + " names " + pad.length / 2 + " axes, input has rank " + s0.length);
        if (mode != PadMode.CONSTANT && value != 0)
            throw new IllegalArgumentException("pad: a fill value (" + value + ") is only for constant mode, not " + mode);
        if (mode != PadMode.CONSTANT) return padIndexMap(x, pad, mode);
        Var y = x;
        for (int i = 0; i < pad.length / 2; i++) {
            int a = s0.length - 1 - i, l = pad[2 * i], r = pad[2 * i + 1];
            int n = y.shape()[a];
            if ((long) n + l + r < 0)
                throw new IllegalArgumentException("pad: axis " + a + " of size " + n + " padded by (" + l + ", " + r + ") would have a negative size");
            y = padConstant(y, a, l, r, value);
        }
        return y == x ? x.reshape(s0) : y;   // a node of its own even when nothing was padded
    }

    /**
     * Reflect, replicate or circular padding as one {@link IndexMap}: output element i reads x at the flat index src[i],
     * where each padded axis maps its output position j to the input position k = j - left, mirrored (reflect: -k below
     * 0, 2 (n - 1) - k past the end), clamped (replicate) or wrapped (circular: k mod n, k in [-n, 2n) as the pads are at
     * most n) into [0, n). The axes are checked in the order the per-axis composition met them (last first), with the
     * shape as padded so far, so the refusals name what they named before.
     */
    private static Var padIndexMap(Var x, int[] pad, PadMode mode) {
        int[] s0 = x.shape(), out = s0.clone();
        int[][] map = new int[s0.length][];   // per axis: input position of each output position, null where unpadded
        for (int i = 0; i < pad.length / 2; i++) {
            int a = s0.length - 1 - i, l = pad[2 * i], r = pad[2 * i + 1];
            int n = s0[a];
            if (l < 0 || r < 0) throw new IllegalArgumentException("pad: negative padding (" + l + ", " + r + ") on axis " + a + " is only for constant mode, not " + mode);
            if (l == 0 && r == 0) continue;
            if (mode == PadMode.REFLECT && (l >= n || r >= n))
                throw new IllegalArgumentException("pad: reflect padding (" + l + ", " + r + ") must be less than axis " + a + "'s size " + n + " (shape " + Shape.str(out) + ")");
            if (mode == PadMode.REPLICATE && n == 0) throw new IllegalArgumentException("pad: replicate padding of axis " + a + " of size 0 (no edge to repeat)");
            if (mode == PadMode.CIRCULAR && (l > n || r > n))
                throw new IllegalArgumentException("pad: circular padding (" + l + ", " + r + ") wraps more than once round axis " + a + " of size " + n);
            long size = (long) n + l + r;
            if (size > Integer.MAX_VALUE)
                throw new IllegalArgumentException("pad: axis " + a + " of size " + n + " padded by (" + l + ", " + r + ") would have " + size + " elements, more than " + Integer.MAX_VALUE);
            map[a] = new int[]{l};   // the left pad for now: the maps are built once the output's size is known to fit
            out[a] = (int) size;
        }
        if (Arrays.equals(out, s0) && Arrays.stream(map).allMatch(java.util.Objects::isNull)) return x.reshape(s0);   // a node of its own even when nothing was padded
        long total = Shape.numel(out);
        if (total > Integer.MAX_VALUE)   // FlatIndex's maps are int arrays
            throw new IllegalArgumentException("pad: " + mode.name().toLowerCase(java.util.Locale.ROOT) + " padding's output " + Shape.str(out) + " would hold "
                    + total + " elements, more than " + Integer.MAX_VALUE);
        for (int a = 0; a < out.length; a++) {   // a replicate pad has no bound of its own: its map is only built for an output that fits
            if (map[a] == null) continue;
            int l = map[a][0], n = s0[a];
            int[] m = new int[out[a]];
            for (int j = 0; j < m.length; j++) {
                int k = j - l;
                m[j] = switch (mode) {
                    case REFLECT -> k < 0 ? -k : k >= n ? 2 * (n - 1) - k : k;
                    case CIRCULAR -> k < 0 ? k + n : k >= n ? k - n : k;
                    default -> Math.max(0, Math.min(n - 1, k));
                };
            }
            map[a] = m;
        }
        long[] st = Shape.contiguousStrides(s0);
        int[] src = new int[(int) total], idx = new int[out.length];
        for (int i = 0; i < src.length; i++) {
            long o = 0;
            for (int d = 0; d < out.length; d++) o += (map[d] == null ? idx[d] : map[d][idx[d]]) * st[d];
            src[i] = (int) o;
            for (int d = out.length - 1; d >= 0; d--) { if (++idx[d] < out[d]) break; idx[d] = 0; }
        }
        String name = switch (mode) { case REFLECT -> "ReflectPad"; case CIRCULAR -> "CircularPad"; default -> "ReplicatePad"; };
        return new IndexMap(name, src, out).apply(x);
    }

    private static Var padConstant(Var y, int a, int l, int r, double value) {
        int n = y.shape()[a];
        if (l < 0) { y = y.slice(a, -l, n); n += l; }
        if (r < 0) { y = y.slice(a, 0, n + r); n += r; }
        if (l <= 0 && r <= 0) return y;
        List<Var> parts = new ArrayList<>();
        if (l > 0) parts.add(filled(y, a, l, value));
        parts.add(y);
        if (r > 0) parts.add(filled(y, a, r, value));
        return Var.cat(a, parts.toArray(Var[]::new));
    }

    /** A constant of y's shape, dtype and device with axis a of size n, filled with value. */
    private static Var filled(Var y, int a, int n, double value) {
        Tensor v = y.value();
        int[] s = v.shape();
        s[a] = n;
        return Var.of(Tensor.empty(v.device(), v.dtype(), s).fill(value));
    }
}
