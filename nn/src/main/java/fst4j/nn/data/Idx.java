package fst4j.nn.data;

import fst4j.nn.io.DataFormatException;

import java.io.BufferedInputStream;
import java.io.EOFException;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reader for the IDX format of MNIST and Fashion-MNIST: a big-endian magic {@code 0x0000TTDD} (TT = data type,
 * DD = number of dimensions), DD big-endian int32 sizes, then the data. fst4j reads unsigned-byte data (TT = 0x08):
 * {@code 0x00000801} label files and {@code 0x00000803} image files. Files may be gzip-compressed (recognised by
 * their content, not their name). The data must be exactly as long as the header says.
 *
 * <p>Problems are {@link DataFormatException}s naming the file and the byte offset; in gzip files the offset of a
 * header or size problem is in the decompressed stream, and that of a corrupt gzip stream in the compressed file.
 */
public final class Idx {
    private Idx() {}

    /** IDX data type code for unsigned bytes. */
    public static final int UBYTE = 0x08;

    /** An IDX array: its dimensions and its unsigned-byte data, row-major. */
    public record IdxArray(int[] dims, byte[] data) {
        public long count() {
            long n = 1;
            for (int d : dims) n *= d;
            return n;
        }
    }

    /** Reads an unsigned-byte IDX file of any number of dimensions. */
    public static IdxArray read(Path file) throws IOException { return read(file, -1); }

    /** Reads an unsigned-byte IDX file that must have expectedDims dimensions (-1: any). */
    public static IdxArray read(Path file, int expectedDims) throws IOException {
        try (InputStream raw = Files.newInputStream(file);
             CountingStream counted = new CountingStream(new BufferedInputStream(raw, 1 << 16))) {
            counted.mark(2);
            boolean gz = counted.read() == 0x1f && counted.read() == 0x8b;
            counted.reset();
            String where = gz ? " (in the decompressed data)" : "";
            InputStream in;
            try {
                in = gz ? new GZIPInputStream(counted, 1 << 16) : counted;
            } catch (ZipException | EOFException ex) {
                throw new DataFormatException(file, counted.count, "bad gzip header: " + ex.getMessage(), ex);
            }
            try {
                byte[] magic = in.readNBytes(4);
                if (magic.length < 4) throw new DataFormatException(file, magic.length, "truncated: the file ends inside the 4-byte IDX magic" + where);
                if (magic[0] != 0 || magic[1] != 0)
                    throw new DataFormatException(file, 0, String.format("bad magic 0x%02x%02x%02x%02x: not an IDX file (expected 0x0000TTDD)%s",
                            magic[0], magic[1], magic[2], magic[3], where));
                int type = magic[2] & 0xFF, nd = magic[3] & 0xFF;
                if (type != UBYTE)
                    throw new DataFormatException(file, 2, String.format("IDX data type 0x%02x is not supported; fst4j reads unsigned bytes (0x08)%s", type, where));
                if (expectedDims >= 0 && nd != expectedDims)
                    throw new DataFormatException(file, 3, "wrong dimension count: " + nd + " dimensions (magic 0x000008"
                            + String.format("%02x", nd) + "), expected " + expectedDims + " (magic 0x000008" + String.format("%02x", expectedDims) + ")" + where);
                if (nd == 0) throw new DataFormatException(file, 3, "wrong dimension count: 0 dimensions" + where);
                byte[] dimBytes = in.readNBytes(4 * nd);
                if (dimBytes.length < 4 * nd)
                    throw new DataFormatException(file, 4 + dimBytes.length, "truncated: the file ends inside the " + nd + " dimension sizes" + where);
                int[] dims = new int[nd];
                long count = 1;
                for (int k = 0; k < nd; k++) {
                    dims[k] = ((dimBytes[4 * k] & 0xFF) << 24) | ((dimBytes[4 * k + 1] & 0xFF) << 16)
                            | ((dimBytes[4 * k + 2] & 0xFF) << 8) | (dimBytes[4 * k + 3] & 0xFF);
                    if (dims[k] < 0)
                        throw new DataFormatException(file, 4 + 4L * k, "dimension " + k + " has negative size " + dims[k] + where);
                    count *= dims[k];
                    if (count > Integer.MAX_VALUE - 8)
                        throw new DataFormatException(file, 4 + 4L * k, "dimensions " + Arrays.toString(Arrays.copyOf(dims, k + 1))
                                + " declare more than 2^31 bytes" + where);
                }
                long headerLen = 4 + 4L * nd;
                if (!gz) {
                    long size = Files.size(file);
                    if (size != headerLen + count)
                        throw sizeMismatch(file, headerLen, count, size - headerLen, dims, where);
                }
                byte[] data = in.readNBytes((int) count);
                if (data.length < count) throw sizeMismatch(file, headerLen, count, data.length, dims, where);
                if (in.read() >= 0) {
                    long extra = 1;
                    while (in.read() >= 0) extra++;
                    throw sizeMismatch(file, headerLen, count, count + extra, dims, where);
                }
                return new IdxArray(dims, data);
            } catch (ZipException | EOFException ex) {
                throw new DataFormatException(file, counted.count, "corrupt or truncated gzip stream (offset in the compressed file): "
                        + ex.getMessage(), ex);
            }
        }
    }

    private static DataFormatException sizeMismatch(Path file, long headerLen, long want, long have, int[] dims, String where) {
        String problem = have < want ? "truncated: " : "size does not match the header: ";
        return new DataFormatException(file, headerLen + Math.min(want, have), problem + "header dimensions " + Arrays.toString(dims)
                + " declare " + want + " data bytes after the " + headerLen + "-byte header, but the file has " + have + where);
    }

    /**
     * Reads an image file ({@code 0x00000803}, N x H x W) and a label file ({@code 0x00000801}, N) into a one-channel
     * dataset. Labels must be below numClasses.
     */
    public static ImageDataset load(String name, Path images, Path labels, int numClasses) throws IOException {
        IdxArray im = read(images, 3);
        IdxArray lb = read(labels, 1);
        int n = im.dims()[0];
        if (im.dims()[1] == 0 || im.dims()[2] == 0)   // else the dataset's "invalid dataset dimensions" without the file's name
            throw new DataFormatException(images, im.dims()[1] == 0 ? 8 : 12, "images of " + im.dims()[1] + "x" + im.dims()[2] + " pixels: a side is 0");
        if (lb.dims()[0] != n)
            throw new DataFormatException(labels, 4, lb.dims()[0] + " labels for the " + n + " images of " + images);
        int[] l = new int[n];
        for (int i = 0; i < n; i++) {
            l[i] = lb.data()[i] & 0xFF;
            if (l[i] >= numClasses)
                throw new DataFormatException(labels, 8 + i, "label " + l[i] + " of image " + i + " is outside 0.." + (numClasses - 1));
        }
        return ImageDataset.ofBytes(name, im.data(), n, 1, im.dims()[1], im.dims()[2], l, numClasses);
    }

    /**
     * The file for prefix ("train" or "t10k") and kind ("images" or "labels") in dir, under any of the usual MNIST
     * names: {@code train-images-idx3-ubyte}, {@code train-images.idx3-ubyte}, each optionally with {@code .gz}.
     */
    public static Path find(Path dir, String prefix, String kind) throws NoSuchFileException {
        String idx = kind.equals("images") ? "idx3" : "idx1";
        List<String> names = List.of(prefix + "-" + kind + "-" + idx + "-ubyte", prefix + "-" + kind + "." + idx + "-ubyte");
        for (String nm : names)
            for (String ext : new String[]{"", ".gz"}) {
                Path p = dir.resolve(nm + ext);
                if (Files.isRegularFile(p)) return p;
            }
        throw new NoSuchFileException(dir.resolve(names.get(0)) + "[.gz]", null, "no MNIST-style " + prefix + " " + kind + " file in " + dir);
    }

    /** True when dir holds all four MNIST-style files (train/t10k images/labels). */
    public static boolean hasMnistFiles(Path dir) {
        try {
            for (String p : new String[]{"train", "t10k"})
                for (String k : new String[]{"images", "labels"}) find(dir, p, k);
            return true;
        } catch (NoSuchFileException e) {
            return false;
        }
    }

    /** Loads train and test splits from a directory with MNIST-style names (see {@link #find}). */
    public static Datasets.Split loadDir(Path dir, String name, int numClasses) throws IOException {
        ImageDataset train = load(name + "-train", find(dir, "train", "images"), find(dir, "train", "labels"), numClasses);
        ImageDataset test = load(name + "-test", find(dir, "t10k", "images"), find(dir, "t10k", "labels"), numClasses);
        return new Datasets.Split(train, test);
    }

    /** Counts the bytes read through it (for offsets into the compressed file). */
    private static final class CountingStream extends FilterInputStream {
        long count, mark;

        CountingStream(InputStream in) { super(in); }

        @Override public int read() throws IOException {
            int b = super.read();
            if (b >= 0) count++;
            return b;
        }

        @Override public int read(byte[] b, int off, int len) throws IOException {
            int r = super.read(b, off, len);
            if (r > 0) count += r;
            return r;
        }

        @Override public long skip(long n) throws IOException {
            long r = super.skip(n);
            count += r;
            return r;
        }

        @Override public synchronized void mark(int limit) { super.mark(limit); mark = count; }

        @Override public synchronized void reset() throws IOException { super.reset(); count = mark; }
    }

    /** Writes an unsigned-byte IDX file (uncompressed, or gzip when gzip is true); for tests and tools. */
    public static void write(Path file, int[] dims, byte[] data, boolean gzip) throws IOException {
        long n = 1;
        for (int d : dims) n *= d;
        if (n != data.length) throw new IllegalArgumentException(data.length + " bytes for dimensions " + Arrays.toString(dims));
        try (var os = Files.newOutputStream(file);
             var out = new java.io.DataOutputStream(new java.io.BufferedOutputStream(gzip ? new java.util.zip.GZIPOutputStream(os) : os))) {
            out.writeInt((UBYTE << 8) | dims.length);
            for (int d : dims) out.writeInt(d);
            out.write(data);
        }
    }
}
