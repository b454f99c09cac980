package fst4j.nn.data;

import fst4j.nn.io.DataFormatException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Reader for the CIFAR-10 binary version ({@code cifar-10-binary.tar.gz}, unpacked): files of records of one label
 * byte (0..9) followed by 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major), so the pixels
 * are already C x H x W. Training data is {@code data_batch_1.bin .. data_batch_5.bin}, test data
 * {@code test_batch.bin}.
 */
public final class Cifar10 {
    private Cifar10() {}

    public static final int CHANNELS = 3, HEIGHT = 32, WIDTH = 32, CLASSES = 10;
    public static final int IMAGE_BYTES = CHANNELS * HEIGHT * WIDTH;
    /** Bytes per record: one label byte then the image. */
    public static final int RECORD_BYTES = 1 + IMAGE_BYTES;
    public static final String[] CLASS_NAMES = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

    /** Reads the records of the given batch files, in order, into one dataset. */
    public static ImageDataset read(String name, Path... files) throws IOException {
        long total = 0;
        long[] counts = new long[files.length];
        for (int f = 0; f < files.length; f++) {
            long size = Files.size(files[f]);
            if (size == 0) throw new DataFormatException(files[f], 0, "empty file: no CIFAR-10 records");
            if (size % RECORD_BYTES != 0) {
                long whole = size / RECORD_BYTES;
                throw new DataFormatException(files[f], whole * RECORD_BYTES, "truncated record " + whole + ": the file ends "
                        + (size - whole * RECORD_BYTES) + " bytes into a " + RECORD_BYTES + "-byte record (size " + size
                        + " is not a multiple of " + RECORD_BYTES + ")");
            }
            counts[f] = size / RECORD_BYTES;
            total += counts[f];
        }
        if (total * IMAGE_BYTES > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("too many CIFAR-10 records for one array: " + total);
        int n = (int) total;
        byte[] pixels = new byte[n * IMAGE_BYTES];
        int[] labels = new int[n];
        byte[] rec = new byte[RECORD_BYTES * 256];
        int img = 0;
        for (int f = 0; f < files.length; f++) {
            try (InputStream in = Files.newInputStream(files[f])) {
                long left = counts[f];
                long offset = 0;
                while (left > 0) {
                    int k = (int) Math.min(left, 256);
                    int got = in.readNBytes(rec, 0, k * RECORD_BYTES);
                    if (got < k * RECORD_BYTES) // the file shrank while we read it
                        throw new DataFormatException(files[f], offset + got, "truncated record " + ((offset + got) / RECORD_BYTES));
                    for (int r = 0; r < k; r++) {
                        int lab = rec[r * RECORD_BYTES] & 0xFF;
                        if (lab >= CLASSES)
                            throw new DataFormatException(files[f], offset + (long) r * RECORD_BYTES, "record " + ((offset / RECORD_BYTES) + r)
                                    + " has label " + lab + ", outside 0..9 (not a CIFAR-10 binary file?)");
                        labels[img] = lab;
                        System.arraycopy(rec, r * RECORD_BYTES + 1, pixels, img * IMAGE_BYTES, IMAGE_BYTES);
                        img++;
                    }
                    offset += (long) k * RECORD_BYTES;
                    left -= k;
                }
            }
        }
        return ImageDataset.ofBytes(name, pixels, n, CHANNELS, HEIGHT, WIDTH, labels, CLASSES);
    }

    /**
     * The directory holding the batch files: dir itself or its {@code cifar-10-batches-bin} subdirectory (as the
     * archive unpacks).
     */
    public static Path locate(Path dir) throws NoSuchFileException {
        for (Path d : new Path[]{dir, dir.resolve("cifar-10-batches-bin")})
            if (Files.isRegularFile(d.resolve("data_batch_1.bin")) && Files.isRegularFile(d.resolve("test_batch.bin"))) return d;
        throw new NoSuchFileException(dir.resolve("data_batch_1.bin").toString(), null,
                "no CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin) in " + dir + " or its cifar-10-batches-bin");
    }

    /** Loads the train (data_batch_1..5.bin) and test (test_batch.bin) splits from dir (see {@link #locate}). */
    public static Datasets.Split load(Path dir) throws IOException {
        Path d = locate(dir);
        Path[] train = new Path[5];
        for (int i = 0; i < 5; i++) {
            train[i] = d.resolve("data_batch_" + (i + 1) + ".bin");
            if (!Files.isRegularFile(train[i])) throw new NoSuchFileException(train[i].toString(), null, "missing CIFAR-10 training batch");
        }
        return new Datasets.Split(read("cifar10-train", train), read("cifar10-test", d.resolve("test_batch.bin")));
    }
}
