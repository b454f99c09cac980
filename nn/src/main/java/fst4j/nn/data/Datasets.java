package fst4j.nn.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Finds and loads the datasets fst4j trains on.
 *
 * <p>Fashion-MNIST is looked for, in order, in: the directory passed to {@link #fashionMnist(Path)} (if not null;
 * then it must hold the files), {@code $FST4J_DATA} and {@code $FST4J_DATA/fashion-mnist}, and where Debian's
 * {@code dataset-fashion-mnist} package installs it, {@value #DEBIAN_FASHION_MNIST}
 * ({@code train-images-idx3-ubyte.gz}, {@code train-labels-idx1-ubyte.gz}, {@code t10k-images-idx3-ubyte.gz},
 * {@code t10k-labels-idx1-ubyte.gz}). If it is nowhere, {@link DatasetNotFoundException}'s message is the one line
 * to run: {@code sudo apt-get install dataset-fashion-mnist} (without {@code sudo} when running as root).
 */
public final class Datasets {
    private Datasets() {}

    /** Where {@code apt-get install dataset-fashion-mnist} puts the four gzipped IDX files. */
    public static final String DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist";
    /** Environment variable naming a data directory searched before the Debian location. */
    public static final String DATA_ENV = "FST4J_DATA";
    public static final String FASHION_MNIST_PACKAGE = "dataset-fashion-mnist";

    public static final String[] FASHION_MNIST_CLASSES = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    /** Per-channel pixel mean and std of the Fashion-MNIST training set (pixels in [0,1]). */
    public static final float[] FASHION_MNIST_MEAN = {0.2860f}, FASHION_MNIST_STD = {0.3530f};
    /** Per-channel pixel mean and std of the CIFAR-10 training set (pixels in [0,1]). */
    public static final float[] CIFAR10_MEAN = {0.4914f, 0.4822f, 0.4465f}, CIFAR10_STD = {0.2470f, 0.2435f, 0.2616f};

    /** A train and a test split. */
    public record Split(ImageDataset train, ImageDataset test) {}

    /** Fashion-MNIST from the first place it is found (see the class comment). */
    public static Split fashionMnist() throws IOException { return fashionMnist(null); }

    /** Fashion-MNIST from overrideDir if not null (it must hold the files), else as {@link #fashionMnist()}. */
    public static Split fashionMnist(Path overrideDir) throws IOException {
        return fashionMnist(overrideDir, System.getenv(DATA_ENV), Path.of(DEBIAN_FASHION_MNIST));
    }

    static Split fashionMnist(Path overrideDir, String env, Path debian) throws IOException {
        Path dir = locate(overrideDir, env, debian).orElseThrow(() -> new DatasetNotFoundException(installCommand(FASHION_MNIST_PACKAGE),
                "Fashion-MNIST is not installed: no train-images-idx3-ubyte[.gz] and the other three files in "
                        + (env != null && !env.isBlank() ? "$" + DATA_ENV + " (" + env + "), " + Path.of(env, "fashion-mnist") + " or " : "") + debian));
        return Idx.loadDir(dir, "fashion-mnist", 10);
    }

    /**
     * The directory Fashion-MNIST would be loaded from, or empty. An overrideDir that lacks the files is an error
     * ({@link NoSuchFileException}), not a reason to look elsewhere.
     */
    public static Optional<Path> locateFashionMnist(Path overrideDir) throws NoSuchFileException {
        return locate(overrideDir, System.getenv(DATA_ENV), Path.of(DEBIAN_FASHION_MNIST));
    }

    static Optional<Path> locate(Path overrideDir, String env, Path debian) throws NoSuchFileException {
        if (overrideDir != null) {
            if (Idx.hasMnistFiles(overrideDir)) return Optional.of(overrideDir);
            throw new NoSuchFileException(overrideDir.toString(), null,
                    "no Fashion-MNIST files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-...) in this directory");
        }
        List<Path> candidates = new ArrayList<>();
        if (env != null && !env.isBlank()) {
            candidates.add(Path.of(env));
            candidates.add(Path.of(env, "fashion-mnist"));
        }
        candidates.add(debian);
        for (Path p : candidates) if (Files.isDirectory(p) && Idx.hasMnistFiles(p)) return Optional.of(p);
        return Optional.empty();
    }

    /** CIFAR-10 (binary version) from dir or dir/cifar-10-batches-bin. Debian has no package for it. */
    public static Split cifar10(Path dir) throws IOException { return Cifar10.load(dir); }

    /** MNIST or any dataset in MNIST's IDX layout and names, from dir. */
    public static Split idx(Path dir, String name, int numClasses) throws IOException { return Idx.loadDir(dir, name, numClasses); }

    /** "apt-get install PKG", prefixed with "sudo " unless this process runs as root. */
    static String installCommand(String pkg) {
        return (isRoot() ? "" : "sudo ") + "apt-get install " + pkg;
    }

    static boolean isRoot() {
        try {
            Object uid = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
            if (uid instanceof Integer u) return u == 0;
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException | SecurityException ignored) {
            // not Linux: fall back to the user name
        }
        return "root".equals(System.getProperty("user.name"));
    }
}
