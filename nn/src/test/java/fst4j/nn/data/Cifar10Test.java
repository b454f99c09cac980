package fst4j.nn.data;

import fst4j.nn.io.DataFormatException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class Cifar10Test {
    @TempDir Path dir;

    /** n records; record r has label (first + r) % 10 and pixel k = (first + r + k) mod 256. */
    static byte[] records(int n, int first) {
        byte[] b = new byte[n * Cifar10.RECORD_BYTES];
        for (int r = 0; r < n; r++) {
            int o = r * Cifar10.RECORD_BYTES;
            b[o] = (byte) ((first + r) % 10);
            for (int k = 0; k < Cifar10.IMAGE_BYTES; k++) b[o + 1 + k] = (byte) (first + r + k);
        }
        return b;
    }

    @Test
    void readsRecordsInOrder() throws IOException {
        Path a = dir.resolve("a.bin"), b = dir.resolve("b.bin");
        Files.write(a, records(3, 0));
        Files.write(b, records(2, 3));
        ImageDataset ds = Cifar10.read("c", a, b);
        assertEquals(5, ds.size());
        assertEquals(3, ds.channels());
        assertEquals(32, ds.height());
        assertEquals(32, ds.width());
        assertArrayEquals(new int[]{0, 1, 2, 3, 4}, ds.labels());
        for (int i = 0; i < 5; i++)
            for (int k : new int[]{0, 1, 1023, 1024, 2048, 3071}) // red, green, blue planes
                assertEquals((byte) (i + k), ds.bytes()[i * 3072 + k]);
    }

    @Test
    void loadsStandardLayout() throws IOException {
        Path d = dir.resolve("cifar-10-batches-bin");
        Files.createDirectories(d);
        for (int i = 1; i <= 5; i++) Files.write(d.resolve("data_batch_" + i + ".bin"), records(2, i * 2));
        Files.write(d.resolve("test_batch.bin"), records(3, 7));
        Datasets.Split s = Datasets.cifar10(dir);  // finds the subdirectory
        assertEquals(10, s.train().size());
        assertEquals(3, s.test().size());
        assertArrayEquals(new int[]{2, 3, 4, 5, 6, 7, 8, 9, 0, 1}, s.train().labels());
        assertEquals(Cifar10.load(d).test().size(), 3);
        Files.delete(d.resolve("data_batch_4.bin"));
        assertThrows(NoSuchFileException.class, () -> Cifar10.load(dir));
        assertThrows(NoSuchFileException.class, () -> Cifar10.load(dir.resolve("nowhere")));
    }

    @Test
    void truncatedRecord() throws IOException {
        Path f = dir.resolve("t.bin");
        byte[] b = records(5, 0);
        Files.write(f, Arrays.copyOf(b, b.length - 100));
        DataFormatException e = assertThrows(DataFormatException.class, () -> Cifar10.read("c", f));
        assertEquals(f, e.file());
        assertEquals(4L * 3073, e.offset());
        assertTrue(e.getMessage().contains("truncated record 4"), e.getMessage());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        Files.write(f, new byte[0]);
        assertEquals(0, assertThrows(DataFormatException.class, () -> Cifar10.read("c", f)).offset());
    }

    @Test
    void badLabel() throws IOException {
        Path f = dir.resolve("l.bin");
        byte[] b = records(4, 0);
        b[2 * 3073] = 37;
        Files.write(f, b);
        DataFormatException e = assertThrows(DataFormatException.class, () -> Cifar10.read("c", f));
        assertEquals(2L * 3073, e.offset());
        assertTrue(e.getMessage().contains("label 37"), e.getMessage());
    }
}
