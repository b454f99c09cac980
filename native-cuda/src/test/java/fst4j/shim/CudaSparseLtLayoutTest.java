package fst4j.shim;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Where cuSPARSELt puts each kept value and each 2-bit position in its compressed A (issue #6 asks for a fused
 * prune-and-compress kernel writing that layout directly; the library does not document it). The probe compresses
 * 2:4 bf16 matrices whose kept values encode their own position, three times with the same pattern: every kept value
 * 0.5 (so that value slots are told from metadata, which depends on the pattern only and so reads the same in all
 * three), the value row + 1, and the value column + 1 (integers up to 256 are exact in bf16). Each 16-bit slot of the compressed buffer that holds a value then
 * names its (row, column); the slots that do not change between the three are metadata. It checks that every kept value
 * lands in exactly one slot and that the metadata does not depend on the values, tests the simplest layout (values row by
 * row in k order from some offset) and prints the mapping's first slots, its strides and the metadata's first bytes
 * ("SPLT LAYOUT" lines), and writes the three buffers and the pattern to {@code fst4j.splt.layoutDir} (default
 * target/splt-layout) for gpu/splt_layout.py. On the host emulator the layout is the emulator's own (a 64-byte header,
 * then values row by row, then one byte per group), which the probe must find: that checks the probe itself in CI.
 */
class CudaSparseLtLayoutTest {
    private static final int BF16 = Cuda.R_16BF;
    private static final short HALF = Bf16.of(0.5f);
    /** The six ways to keep 2 of 4, as (i0, i1) with i0 < i1; the pattern walks through all of them. */
    private static final int[][] PAIRS = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

    private final DeviceBuffers mem = new DeviceBuffers(0xff, 16);

    @BeforeEach
    void needsDevice() { assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status()); }

    @AfterEach
    void freeAll() { mem.close(); }

    /** The kept pair of group g in row r: a hash of (r, g), so every pair occurs in every row, in no regular order. */
    private static int[] pair(int r, int g) { return PAIRS[(int) (((r * 1000003L + g) * 0x9E3779B97F4A7C15L >>> 40) % 6)]; }

    /** A [m, k] row-major bf16, 2:4 along k by {@link #pair}, kept values code(row, col) (-1: 0.5). */
    private static short[] matrix(int m, int k, java.util.function.IntBinaryOperator code) {
        short[] a = new short[m * k];
        for (int r = 0; r < m; r++)
            for (int g = 0; g < k / 4; g++)
                for (int i : pair(r, g)) {
                    int v = code.applyAsInt(r, 4 * g + i);
                    a[r * k + 4 * g + i] = v < 0 ? HALF : Bf16.of(v);   // -1: the marker 0.5
                }
        return a;
    }

    private short[] compressed(Cuda.SparseLtPlan p, short[] a) {
        MemorySegment comp = mem.dev(p.compressedBytes()), buf = mem.dev(Math.max(1, p.bufferBytes()));
        p.compress(mem.upload(a), comp, buf);
        return mem.downloadShorts(comp, p.compressedBytes() / 2);
    }

    /** The integer 1..256 that bf16 slot s holds, or 0 when it holds none. */
    private static int code(short s) {
        float v = Bf16.value(s);
        return v >= 1 && v <= 256 && v == Math.rint(v) ? (int) v : 0;
    }

    @Test
    void compressedLayoutIsMappedValueByValue() throws IOException {
        Path dir = Path.of(System.getProperty("fst4j.splt.layoutDir", "target/splt-layout"));
        Files.createDirectories(dir);
        int[][] shapes = {{64, 64, 64}, {128, 256, 64}, {128, 256, 256}};   // m, k, n (n only to make the plan)
        List<String> report = new ArrayList<>();
        for (int[] s : shapes) {
            int m = s[0], k = s[1], n = s[2];
            Cuda.SparseLtPlan plan;
            try {
                plan = Cuda.sparseLtPlan(m, n, k, BF16, BF16);
            } catch (CudaUnavailableException e) {
                assumeTrue(false, "cuSPARSELt unavailable: " + e.getMessage());
                return;
            }
            try (Cuda.SparseLtPlan p = plan) {
                short[] ones = compressed(p, matrix(m, k, (r, c) -> -1));
                short[] rows = compressed(p, matrix(m, k, (r, c) -> r + 1));
                short[] cols = compressed(p, matrix(m, k, (r, c) -> c + 1));
                String tag = m + "x" + k + " (n " + n + ", " + p.compressedBytes() + " bytes)";
                dump(dir.resolve("splt-" + m + "x" + k + "x" + n + ".bin"), m, k, n, ones, rows, cols);
                report.addAll(analyse(tag, m, k, ones, rows, cols));
            }
        }
        Files.write(dir.resolve("splt-layout.txt"), report);
    }

    /** Maps every value slot to its (row, column), checks it, and describes the layout in a few lines. */
    private static List<String> analyse(String tag, int m, int k, short[] ones, short[] rows, short[] cols) {
        List<String> out = new ArrayList<>() {
            @Override public boolean add(String line) { System.out.println(line); return super.add(line); }
        };
        int kept = m * k / 2;
        int[] slotOf = new int[m * k];
        java.util.Arrays.fill(slotOf, -1);
        int values = 0, first = -1, last = -1;
        for (int i = 0; i < ones.length; i++) {
            if (ones[i] != HALF || rows[i] == ones[i]) continue;   // metadata reads the same in all three
            int r = code(rows[i]) - 1, c = code(cols[i]) - 1;
            assertTrue(r >= 0 && c >= 0 && r < m && c < k, tag + ": slot " + i + " holds a value (0.5 in the first buffer) but no position: "
                    + String.format("%04x %04x", rows[i] & 0xffff, cols[i] & 0xffff));
            int[] pr = pair(r, c / 4);
            assertTrue(c % 4 == pr[0] || c % 4 == pr[1], tag + ": slot " + i + " holds (" + r + ", " + c + "), which the pattern pruned");
            assertEquals(-1, slotOf[r * k + c], tag + ": (" + r + ", " + c + ") in two slots");
            slotOf[r * k + c] = i;
            values++;
            if (first < 0) first = i;
            last = i;
        }
        assertEquals(kept, values, tag + ": kept values found in the compressed buffer");
        // the rest depends on the pattern only: the same 16-bit words in all three buffers
        int meta = 0;
        for (int i = 0; i < ones.length; i++) {
            if (ones[i] == HALF && rows[i] != ones[i]) continue;   // a value
            assertTrue(ones[i] == rows[i] && rows[i] == cols[i], tag + ": slot " + i + " is neither a value nor the same in all three buffers");
            meta++;
        }
        out.add("SPLT LAYOUT " + tag + ": " + kept + " values in slots " + first + ".." + last + ", " + meta + " other slots");
        // the simplest hypothesis: values row by row, in k order, from slot `first`
        boolean rowMajor = true;
        for (int r = 0; r < m && rowMajor; r++) {
            int q = 0;
            for (int c = 0; c < k; c++) {
                if (slotOf[r * k + c] < 0) continue;
                if (slotOf[r * k + c] != first + r * (k / 2) + q) { rowMajor = false; break; }
                q++;
            }
        }
        out.add("SPLT LAYOUT " + tag + ": values " + (rowMajor ? "row by row in k order (slot = " + first + " + r*k/2 + q)" : "NOT row by row in k order"));
        // the first 48 value slots as (row, column), and how the slot moves along a row and down a column
        StringBuilder sb = new StringBuilder("SPLT LAYOUT " + tag + ": first slots");
        int shown = 0;
        for (int i = first; i <= last && shown < 48; i++) {
            int r = code(rows[i]) - 1, c = code(cols[i]) - 1;
            if (ones[i] != HALF || rows[i] == ones[i]) continue;
            sb.append(' ').append(i).append(":(").append(r).append(',').append(c).append(')');
            shown++;
        }
        out.add(sb.toString());
        out.add("SPLT LAYOUT " + tag + ": row 0 slots " + slotsAlong(slotOf, k, 0, 0, 1, 16) + "; column pair 0 slots down the rows "
                + slotsAlong(slotOf, k, 0, pair(0, 0)[0], k, 16));
        // the first metadata words after the values and before them, hex
        StringBuilder mb = new StringBuilder("SPLT LAYOUT " + tag + ": words before the values");
        for (int i = 0; i < Math.min(first, 16); i++) mb.append(String.format(" %04x", ones[i] & 0xffff));
        mb.append("; after");
        for (int i = last + 1; i < Math.min(ones.length, last + 17); i++) mb.append(String.format(" %04x", ones[i] & 0xffff));
        out.add(mb.toString());
        StringBuilder pb = new StringBuilder("SPLT LAYOUT " + tag + ": row 0's nibbles i0|i1<<2 by group");
        for (int g = 0; g < Math.min(16, k / 4); g++) pb.append(' ').append(pair(0, g)[0] | pair(0, g)[1] << 2);
        out.add(pb.toString());
        return out;
    }

    /** Slots of the kept entries met from (r, c) on, stepping by `step` in the flat [m, k] index, at most n of them. */
    private static String slotsAlong(int[] slotOf, int k, int r, int c, int step, int n) {
        StringBuilder sb = new StringBuilder("[");
        for (int idx = r * k + c, found = 0; idx < slotOf.length && found < n; idx += step) {
            if (slotOf[idx] < 0) continue;
            sb.append(found++ == 0 ? "" : " ").append(slotOf[idx]);
        }
        return sb.append(']').toString();
    }

    /** m, k, n as int32, then the three buffers' 16-bit words, little-endian. */
    private static void dump(Path file, int m, int k, int n, short[]... bufs) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(16 + 2 * bufs.length * bufs[0].length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(m).putInt(k).putInt(n).putInt(bufs[0].length);
        for (short[] s : bufs) for (short v : s) b.putShort(v);
        Files.write(file, b.array());
    }

    /** The probe must find the emulator's own layout: a 64-byte header (32 slots), then the values row by row. */
    @Test
    void findsTheEmulatorsLayout() {
        assumeTrue(Cuda.isEmulated(), "the emulator's layout is known; on a device the probe above reports the library's");
        try (Cuda.SparseLtPlan p = Cuda.sparseLtPlan(32, 16, 64, BF16, BF16)) {
            short[] ones = compressed(p, matrix(32, 64, (r, c) -> -1));
            short[] rows = compressed(p, matrix(32, 64, (r, c) -> r + 1));
            short[] cols = compressed(p, matrix(32, 64, (r, c) -> c + 1));
            List<String> lines = analyse("emulated 32x64", 32, 64, ones, rows, cols);
            assertTrue(lines.get(0).contains("values in slots 32..1055"), lines.get(0));
            assertTrue(lines.get(1).contains("row by row in k order (slot = 32 + r*k/2 + q)"), lines.get(1));
            // a layout that is not row by row is reported as such: swap two rows' values in the value buffers
            short[] rows2 = rows.clone(), cols2 = cols.clone();
            for (int q = 0; q < 32; q++) {
                short t = rows2[32 + q]; rows2[32 + q] = rows2[64 + q]; rows2[64 + q] = t;
                t = cols2[32 + q]; cols2[32 + q] = cols2[64 + q]; cols2[64 + q] = t;
            }
            assertTrue(analyse("swapped", 32, 64, ones, rows2, cols2).get(1).contains("NOT row by row"));
        }
    }
}
