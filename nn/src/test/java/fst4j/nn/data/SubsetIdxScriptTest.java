package fst4j.nn.data;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * gpu/subset_idx.py (gpu/prepare.sh --train-data: the Fashion-MNIST subset carried to a lent GPU) writes the first
 * images and labels of each split as IDX files that Idx reads back with the source's bytes; a source it cannot take
 * whole (a truncated file, a file that is not ubyte IDX) is refused with a message and a non-zero exit here, not
 * written as a short subset that only fails once the device job reads it.
 */
class SubsetIdxScriptTest {
    @TempDir Path dir;

    static final Path SCRIPT = Path.of("..", "gpu", "subset_idx.py").toAbsolutePath().normalize();

    record Ran(int rc, String out) {}

    static Ran run(String... args) throws Exception {
        assumeTrue(Files.isRegularFile(SCRIPT), "no " + SCRIPT);
        List<String> cmd = new java.util.ArrayList<>(List.of("python3", SCRIPT.toString()));
        cmd.addAll(Arrays.asList(args));
        Process p;
        try { p = new ProcessBuilder(cmd).redirectErrorStream(true).start(); }
        catch (IOException e) { assumeTrue(false, "no python3: " + e.getMessage()); throw e; }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) { p.destroyForcibly(); fail("subset_idx.py timed out"); }
        return new Ran(p.exitValue(), out);
    }

    static void gz(Path file, byte[] bytes) throws IOException {
        try (OutputStream o = new GZIPOutputStream(Files.newOutputStream(file))) { o.write(bytes); }
    }

    @Test
    void writesTheFirstImagesAndLabels() throws Exception {
        Path src = dir.resolve("src"), dst = dir.resolve("dst");
        IdxTest.writeMnist(src, 5, 4, 3, 2, true, false);
        Ran r = run(src.toString(), dst.toString(), "3", "2");
        assertEquals(0, r.rc(), r.out());
        for (String[] s : new String[][]{{"train", "3"}, {"t10k", "2"}}) {
            int n = Integer.parseInt(s[1]);
            Idx.IdxArray all = Idx.read(src.resolve(s[0] + "-images-idx3-ubyte.gz")), sub = Idx.read(dst.resolve(s[0] + "-images-idx3-ubyte.gz"));
            assertArrayEquals(new int[]{n, 3, 2}, sub.dims());
            assertArrayEquals(Arrays.copyOf(all.data(), n * 6), sub.data(), s[0] + " images");
            Idx.IdxArray labels = Idx.read(dst.resolve(s[0] + "-labels-idx1-ubyte.gz"));
            assertArrayEquals(new int[]{n}, labels.dims());
        }
    }

    @Test
    void aTruncatedOrForeignSourceIsRefused() throws Exception {
        Path src = dir.resolve("src");
        IdxTest.writeMnist(src, 5, 4, 3, 2, true, false);
        // the header says 5 images of 3 x 2, the body holds 4 and a half
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(new byte[]{0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 2});
        b.write(new byte[27]);
        gz(src.resolve("train-images-idx3-ubyte.gz"), b.toByteArray());
        Ran r = run(src.toString(), dir.resolve("dst").toString(), "5", "2");
        assertNotEquals(0, r.rc(), r.out());
        assertTrue(r.out().contains("train-images-idx3-ubyte") && r.out().contains("truncated"), r.out());
        // as many items as asked, but the source holds fewer bytes than its header says: refused whatever N is
        r = run(src.toString(), dir.resolve("dst2").toString(), "1", "2");
        assertNotEquals(0, r.rc(), r.out());
        assertTrue(r.out().contains("truncated"), r.out());
        // not ubyte IDX (a float IDX magic 0x0d)
        gz(src.resolve("train-images-idx3-ubyte.gz"), new byte[]{0, 0, 0x0d, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2});
        r = run(src.toString(), dir.resolve("dst3").toString(), "0", "2");
        assertNotEquals(0, r.rc(), r.out());
        assertTrue(r.out().contains("not an unsigned-byte IDX file"), r.out());
        Path good = dir.resolve("good");
        IdxTest.writeMnist(good, 5, 4, 3, 2, true, false);
        r = run(good.toString(), dir.resolve("dst4").toString(), "-1", "2");
        assertNotEquals(0, r.rc(), r.out());
        assertTrue(r.out().contains("holds 5 items, -1 asked"), r.out());
    }
}
