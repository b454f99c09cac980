package fst4j.nn.data;

import java.util.Arrays;

/**
 * Images and labels in memory: {@code size} images of {@code channels x height x width}, stored N x C x H x W
 * row-major either as unsigned bytes ({@link #bytes}, pixel value = byte / 255) or as floats ({@link #floats});
 * exactly one of the two is non-null. Labels are 0..numClasses-1. The arrays are shared, not copied: treat them
 * as read-only.
 */
public record ImageDataset(String name, int size, int channels, int height, int width,
                           byte[] bytes, float[] floats, int[] labels, int numClasses) {

    public ImageDataset {
        if (size < 0 || channels <= 0 || height <= 0 || width <= 0)
            throw new IllegalArgumentException("invalid dataset dimensions " + size + "x" + channels + "x" + height + "x" + width);
        if ((bytes == null) == (floats == null))
            throw new IllegalArgumentException("exactly one of bytes and floats must be given");
        long need = (long) size * channels * height * width;
        long have = bytes != null ? bytes.length : floats.length;
        if (have != need)
            throw new IllegalArgumentException(name + ": " + have + " pixel values for " + size + "x" + channels + "x" + height + "x" + width + " = " + need);
        if (labels == null || labels.length != size)
            throw new IllegalArgumentException(name + ": " + (labels == null ? "no" : labels.length) + " labels for " + size + " images");
        if (numClasses <= 0) throw new IllegalArgumentException("numClasses must be positive, got " + numClasses);
        for (int i = 0; i < size; i++)
            if (labels[i] < 0 || labels[i] >= numClasses)
                throw new IllegalArgumentException(name + ": label " + labels[i] + " of image " + i + " is outside 0.." + (numClasses - 1));
        // a NaN pixel spoils its batch's loss (every step it is drawn into stops, Trainer.NonFiniteLossException): refused here,
        // where the data is made and the index is known
        if (floats != null) {
            int per = channels * height * width;
            for (int i = 0; i < floats.length; i++)
                if (!Float.isFinite(floats[i]))
                    throw new IllegalArgumentException(name + ": image " + i / per + " has a non-finite pixel (" + floats[i] + ") at value " + i % per);
        }
    }

    /** A dataset of unsigned-byte pixels (N x C x H x W). */
    public static ImageDataset ofBytes(String name, byte[] pixels, int size, int channels, int height, int width,
                                       int[] labels, int numClasses) {
        return new ImageDataset(name, size, channels, height, width, pixels, null, labels, numClasses);
    }

    /** A dataset of float pixels (N x C x H x W). */
    public static ImageDataset ofFloats(String name, float[] pixels, int size, int channels, int height, int width,
                                        int[] labels, int numClasses) {
        return new ImageDataset(name, size, channels, height, width, null, pixels, labels, numClasses);
    }

    /** Values per image, C*H*W. */
    public int imageSize() { return channels * height * width; }

    public boolean isBytes() { return bytes != null; }

    /** Pixel value at flat index i (N x C x H x W order): byte/255 for byte datasets, the float otherwise. */
    public float pixel(long i) {
        return bytes != null ? (bytes[Math.toIntExact(i)] & 0xFF) / 255f : floats[Math.toIntExact(i)];
    }

    /** The first n images (copies; n is clamped to size), for fast tests. */
    public ImageDataset subset(int n) { return slice(0, Math.min(n, size)); }

    /** Images from (inclusive) to to (exclusive), copied. */
    public ImageDataset slice(int from, int to) {
        if (from < 0 || to > size || from > to)
            throw new IndexOutOfBoundsException("slice [" + from + ", " + to + ") of a dataset of " + size);
        int is = imageSize();
        String n = name + "[" + from + ":" + to + "]";
        int[] l = Arrays.copyOfRange(labels, from, to);
        return bytes != null
                ? ofBytes(n, Arrays.copyOfRange(bytes, from * is, to * is), to - from, channels, height, width, l, numClasses)
                : ofFloats(n, Arrays.copyOfRange(floats, from * is, to * is), to - from, channels, height, width, l, numClasses);
    }

    /** Per-channel mean and (population) standard deviation of the pixel values: {mean[C], std[C]}. */
    public float[][] channelMeanStd() {
        int plane = height * width;
        double[] sum = new double[channels], sq = new double[channels];
        for (int i = 0; i < size; i++)
            for (int c = 0; c < channels; c++) {
                long base = ((long) i * channels + c) * plane;
                double s = 0, q = 0;
                for (int k = 0; k < plane; k++) {
                    double v = pixel(base + k);
                    s += v;
                    q += v * v;
                }
                sum[c] += s;
                sq[c] += q;
            }
        float[] mean = new float[channels], std = new float[channels];
        double cnt = (double) size * plane;
        for (int c = 0; c < channels; c++) {
            double m = sum[c] / cnt;
            mean[c] = (float) m;
            std[c] = (float) Math.sqrt(Math.max(0, sq[c] / cnt - m * m));
        }
        return new float[][]{mean, std};
    }

    /** Number of images per class. */
    public int[] classCounts() {
        int[] c = new int[numClasses];
        for (int l : labels) c[l]++;
        return c;
    }

    @Override
    public String toString() {
        return "ImageDataset[" + name + ": " + size + "x" + channels + "x" + height + "x" + width + " "
                + (bytes != null ? "u8" : "f32") + ", " + numClasses + " classes]";
    }
}
