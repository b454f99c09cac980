package fst4j.nn.train;

import fst4j.nn.data.Datasets;
import fst4j.nn.data.ImageDataset;

import java.io.IOException;
import java.nio.file.Path;

/**
 * A train/test pair with the per-channel normalisation the loaders apply. {@link #load} understands the CLI's
 * {@code --data} values: {@code fashion-mnist} (installed, see {@link Datasets#fashionMnist()}), {@code mnist:DIR}
 * (any dataset in MNIST's IDX names in DIR) and {@code cifar10:DIR} (the binary CIFAR-10).
 */
public record TrainData(String spec, ImageDataset train, ImageDataset test, float[] mean, float[] std) {

    public TrainData {
        // an empty split is refused here, where the data is made: an empty test set scored "test acc 0.00 %", and an empty
        // training set gave a NaN mean (of) that turned every normalised image into NaN (analyze printed all-zero tables)
        if (train.size() == 0) throw new IllegalArgumentException(spec + ": the training set has no images");
        if (test.size() == 0) throw new IllegalArgumentException(spec + ": the test set has no images");
        if (train.channels() != test.channels() || train.height() != test.height() || train.width() != test.width())
            throw new IllegalArgumentException("train and test images differ in shape: " + train + " vs " + test);
    }

    /** Loads by spec; a missing Fashion-MNIST throws {@link fst4j.nn.data.DatasetNotFoundException}. */
    public static TrainData load(String spec) throws IOException {
        String s = spec.trim();
        if (s.equalsIgnoreCase("fashion-mnist") || s.equalsIgnoreCase("fashion_mnist") || s.equalsIgnoreCase("fmnist")) {
            Datasets.Split sp = Datasets.fashionMnist();
            return new TrainData("fashion-mnist", sp.train(), sp.test(), Datasets.FASHION_MNIST_MEAN, Datasets.FASHION_MNIST_STD);
        }
        int colon = s.indexOf(':');
        String kind = colon < 0 ? s : s.substring(0, colon);
        String dir = colon < 0 ? "" : s.substring(colon + 1);
        if (dir.isEmpty()) throw new IllegalArgumentException("unknown --data '" + spec + "'; use fashion-mnist, mnist:DIR or cifar10:DIR");
        return switch (kind.toLowerCase(java.util.Locale.ROOT)) {
            case "mnist", "idx" -> of(s, Datasets.idx(Path.of(dir), "mnist", 10));
            case "fashion-mnist" -> {
                Datasets.Split sp = Datasets.fashionMnist(Path.of(dir));
                yield new TrainData(s, sp.train(), sp.test(), Datasets.FASHION_MNIST_MEAN, Datasets.FASHION_MNIST_STD);
            }
            case "cifar10", "cifar-10" -> {
                Datasets.Split sp = Datasets.cifar10(Path.of(dir));
                yield new TrainData(s, sp.train(), sp.test(), Datasets.CIFAR10_MEAN, Datasets.CIFAR10_STD);
            }
            default -> throw new IllegalArgumentException("unknown --data '" + spec + "'; use fashion-mnist, mnist:DIR or cifar10:DIR");
        };
    }

    /** Normalisation from the training set's own statistics. */
    public static TrainData of(String spec, Datasets.Split sp) {
        float[][] ms = sp.train().channelMeanStd();
        float[] std = ms[1].clone();
        for (int i = 0; i < std.length; i++) if (!(std[i] > 0)) std[i] = 1f;
        return new TrainData(spec, sp.train(), sp.test(), ms[0], std);
    }

    /** The first trainN / testN images of each split (0 or less: all), same normalisation. */
    public TrainData subsets(int trainN, int testN) {
        return new TrainData(spec, trainN > 0 ? train.subset(trainN) : train, testN > 0 ? test.subset(testN) : test, mean, std);
    }
}
