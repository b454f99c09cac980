package fst4j.nn.data;

import fst4j.nn.io.DataFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class IdxTest {
    @TempDir Path dir;

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** Writes an MNIST-style set of 4 files (n train, m test images of h x w) into d. */
    static void writeMnist(Path d, int n, int m, int h, int w, boolean gzip, boolean dotted) throws IOException {
        Files.createDirectories(d);
        String ext = gzip ? ".gz" : "";
        for (String split : new String[]{"train", "t10k"}) {
            int k = split.equals("train") ? n : m;
            String im = dotted ? split + "-images.idx3-ubyte" : split + "-images-idx3-ubyte";
            String lb = dotted ? split + "-labels.idx1-ubyte" : split + "-labels-idx1-ubyte";
            Idx.write(d.resolve(im + ext), new int[]{k, h, w}, random(k * h * w, k), gzip);
            byte[] labels = new byte[k];
            for (int i = 0; i < k; i++) labels[i] = (byte) (i % 10);
            Idx.write(d.resolve(lb + ext), new int[]{k}, labels, gzip);
        }
    }

    @Test
    void roundTripRawAndGzip() throws IOException {
        for (boolean gz : new boolean[]{false, true}) {
            byte[] px = random(5 * 4 * 3, 1);
            Path im = dir.resolve("im" + gz), lb = dir.resolve("lb" + gz);
            Idx.write(im, new int[]{5, 4, 3}, px, gz);
            Idx.write(lb, new int[]{5}, new byte[]{0, 9, 3, 3, 1}, gz);
            Idx.IdxArray a = Idx.read(im);
            assertArrayEquals(new int[]{5, 4, 3}, a.dims());
            assertArrayEquals(px, a.data());
            ImageDataset ds = Idx.load("t", im, lb, 10);
            assertEquals(5, ds.size());
            assertEquals(1, ds.channels());
            assertEquals(4, ds.height());
            assertEquals(3, ds.width());
            assertArrayEquals(new int[]{0, 9, 3, 3, 1}, ds.labels());
            assertArrayEquals(px, ds.bytes());
            assertEquals((px[7] & 0xFF) / 255f, ds.pixel(7));
        }
        // gzip is recognised by content, not by name
        assertEquals(0x1f, Files.readAllBytes(dir.resolve("imtrue"))[0] & 0xFF);
    }

    @Test
    void loadDirWithBothNamingStyles() throws IOException {
        writeMnist(dir.resolve("a"), 7, 3, 5, 6, true, false);
        writeMnist(dir.resolve("b"), 7, 3, 5, 6, false, true);
        for (String sub : new String[]{"a", "b"}) {
            Datasets.Split s = Datasets.idx(dir.resolve(sub), "mnist", 10);
            assertEquals(7, s.train().size());
            assertEquals(3, s.test().size());
            assertEquals(5, s.train().height());
            assertEquals(6, s.train().width());
            assertArrayEquals(new int[]{0, 1, 2}, s.test().labels());
        }
        assertThrows(NoSuchFileException.class, () -> Datasets.idx(dir, "none", 10));
    }

    // ------------------------------------------------------------------ corruption

    private Path bytes(String name, byte[] b) throws IOException {
        Path f = dir.resolve(name);
        Files.write(f, b);
        return f;
    }

    private static DataFormatException bad(Path f, long offset, String... fragments) {
        DataFormatException e = assertThrows(DataFormatException.class, () -> Idx.read(f, 3));
        assertEquals(f, e.file());
        assertTrue(e.getMessage().startsWith(f.toString()), e.getMessage());
        if (offset >= 0) {
            assertEquals(offset, e.offset(), e.getMessage());
            assertTrue(e.getMessage().contains("offset " + offset), e.getMessage());
        }
        for (String fr : fragments) assertTrue(e.getMessage().contains(fr), "'" + fr + "' not in: " + e.getMessage());
        return e;
    }

    private byte[] goodImages() throws IOException {
        Path f = dir.resolve("good");
        Idx.write(f, new int[]{2, 3, 4}, random(24, 3), false);
        return Files.readAllBytes(f);
    }

    @Test
    void badMagic() throws IOException {
        byte[] b = goodImages();
        b[0] = 0x12;
        bad(bytes("magic", b), 0, "bad magic 0x12000803");
    }

    @Test
    void wrongDimensionCountAndType() throws IOException {
        byte[] b = goodImages();
        b[3] = 2;
        bad(bytes("dims", b), 3, "wrong dimension count", "2 dimensions", "expected 3");
        b = goodImages();
        b[2] = 0x0D;
        bad(bytes("type", b), 2, "0x0d is not supported");
        // a label file where images are expected
        Path lb = dir.resolve("labels");
        Idx.write(lb, new int[]{3}, new byte[3], false);
        bad(lb, 3, "wrong dimension count", "1 dimensions");
    }

    @Test
    void truncatedAndOversized() throws IOException {
        byte[] b = goodImages();            // 16-byte header + 24 data bytes
        bad(bytes("trunc", Arrays.copyOf(b, b.length - 5)), 16 + 19, "truncated", "declare 24 data bytes", "has 19");
        bad(bytes("trunchdr", Arrays.copyOf(b, 10)), 10, "truncated", "dimension sizes");
        bad(bytes("truncmagic", Arrays.copyOf(b, 2)), 2, "truncated", "magic");
        bad(bytes("empty", new byte[0]), 0, "truncated");
        bad(bytes("long", Arrays.copyOf(b, b.length + 3)), 16 + 24, "size does not match the header", "has 27");
        // a garbage header claiming 2 GB is rejected before anything that large is allocated
        ByteBuffer huge = ByteBuffer.allocate(16).putInt(0x803).putInt(60000).putInt(60000).putInt(60000);
        bad(bytes("huge", huge.array()), -1, "more than 2^31 bytes");
    }

    @Test
    void gzipProblems() throws IOException {
        Path gz = dir.resolve("g.gz");
        Idx.write(gz, new int[]{50, 28, 28}, random(50 * 784, 4), true);
        byte[] b = Files.readAllBytes(gz);
        // truncated compressed stream
        bad(bytes("gtrunc.gz", Arrays.copyOf(b, b.length / 2)), -1, "gzip");
        // corrupted deflate data or CRC: always an error, never silent garbage
        byte[] c = b.clone();
        for (int i = 100; i < 140; i++) c[i] ^= 0x5A;
        bad(bytes("gcorrupt.gz", c), -1);
        byte[] crc = b.clone();
        crc[crc.length - 6] ^= 1;           // CRC32 in the trailer
        bad(bytes("gcrc.gz", crc), -1, "gzip");
        // a gzip magic followed by garbage
        bad(bytes("ghdr.gz", new byte[]{0x1f, (byte) 0x8b, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0}), -1, "gzip");
        // header problems inside a gzip file report the decompressed offset
        Path g2 = dir.resolve("g2.gz");
        Idx.write(g2, new int[]{3, 2}, new byte[6], true);
        bad(g2, 3, "wrong dimension count", "decompressed");
    }

    @Test
    void labelProblems() throws IOException {
        Path im = dir.resolve("im"), lb = dir.resolve("lb");
        Idx.write(im, new int[]{3, 2, 2}, new byte[12], false);
        Idx.write(lb, new int[]{2}, new byte[]{1, 2}, false);
        DataFormatException e = assertThrows(DataFormatException.class, () -> Idx.load("x", im, lb, 10));
        assertTrue(e.getMessage().contains("2 labels for the 3 images"), e.getMessage());
        Idx.write(lb, new int[]{3}, new byte[]{1, 12, 2}, false);
        e = assertThrows(DataFormatException.class, () -> Idx.load("x", im, lb, 10));
        assertEquals(9, e.offset());
        assertTrue(e.getMessage().contains("label 12 of image 1"), e.getMessage());
    }
    /** Images with a side of 0 pixels are refused naming the file (the dataset's own check named neither file nor offset). */
    @Test
    void imagesWithoutPixels() throws IOException {
        Path im = dir.resolve("im0"), lb = dir.resolve("lb0");
        Idx.write(lb, new int[]{3}, new byte[3], false);
        Idx.write(im, new int[]{3, 0, 4}, new byte[0], false);
        DataFormatException e = assertThrows(DataFormatException.class, () -> Idx.load("x", im, lb, 10));
        assertTrue(e.getMessage().startsWith(im + " at byte offset 8: images of 0x4 pixels"), e.getMessage());
        Idx.write(im, new int[]{3, 4, 0}, new byte[0], false);
        e = assertThrows(DataFormatException.class, () -> Idx.load("x", im, lb, 10));
        assertEquals(12, e.offset());
    }
}
