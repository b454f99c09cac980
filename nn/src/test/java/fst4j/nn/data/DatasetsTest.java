package fst4j.nn.data;

import fst4j.tensor.Scope;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.*;

class DatasetsTest {
    @TempDir Path dir;

    @Test
    void missingDatasetSaysTheOneLineToRun() {
        DatasetNotFoundException e = assertThrows(DatasetNotFoundException.class,
                () -> Datasets.fashionMnist(null, null, dir.resolve("no-such-dir")));
        String expected = (Datasets.isRoot() ? "" : "sudo ") + "apt-get install dataset-fashion-mnist";
        assertEquals(expected, e.getMessage());
        assertEquals(expected, e.installCommand());
        assertTrue(e.getMessage().matches("(sudo )?apt-get install dataset-fashion-mnist"));
    }

    @Test
    void searchOrder() throws IOException {
        Path env = dir.resolve("data");
        IdxTest.writeMnist(env.resolve("fashion-mnist"), 6, 2, 28, 28, true, false);
        Path debian = dir.resolve("debian");
        IdxTest.writeMnist(debian, 4, 2, 28, 28, true, false);
        assertEquals(Optional.of(env.resolve("fashion-mnist")), Datasets.locate(null, env.toString(), debian));
        assertEquals(Optional.of(debian), Datasets.locate(null, dir.resolve("elsewhere").toString(), debian));
        assertEquals(Optional.of(debian), Datasets.locate(null, null, debian));
        assertEquals(Optional.of(debian), Datasets.locate(debian, env.toString(), dir));
        // an explicit directory without the files is an error, not a fallback
        assertThrows(NoSuchFileException.class, () -> Datasets.locate(dir.resolve("empty"), env.toString(), debian));
        Datasets.Split s = Datasets.fashionMnist(null, env.toString(), debian);
        assertEquals(6, s.train().size());
        assertEquals(10, s.train().numClasses());
    }

    /** The real data, where Debian's dataset-fashion-mnist package installs it. */
    @Test
    void realFashionMnist() throws IOException {
        Path deb = Path.of(Datasets.DEBIAN_FASHION_MNIST);
        Assumptions.assumeTrue(Files.isDirectory(deb) && Idx.hasMnistFiles(deb),
                "Fashion-MNIST is not installed in " + deb + " (run: " + Datasets.installCommand("dataset-fashion-mnist") + ")");
        Datasets.Split s = Datasets.fashionMnist(deb);
        assertEquals(60000, s.train().size());
        assertEquals(10000, s.test().size());
        assertEquals(28, s.train().height());
        assertEquals(28, s.train().width());
        assertEquals(1, s.train().channels());
        int[] six = new int[10], one = new int[10];
        Arrays.fill(six, 6000);
        Arrays.fill(one, 1000);
        assertArrayEquals(six, s.train().classCounts());
        assertArrayEquals(one, s.test().classCounts());
        float[][] ms = s.train().channelMeanStd();
        assertEquals(Datasets.FASHION_MNIST_MEAN[0], ms[0][0], 1e-3);
        assertEquals(Datasets.FASHION_MNIST_STD[0], ms[1][0], 1e-3);
        // first training image is an ankle boot (label 9) in the published data
        assertEquals(9, s.train().labels()[0]);
        DataLoader l = DataLoader.builder(s.train()).batchSize(256).shuffle(true).seed(0)
                .normalize(Datasets.FASHION_MNIST_MEAN, Datasets.FASHION_MNIST_STD).build();
        assertEquals(235, l.batchesPerEpoch());
        try (Scope _ = Scope.open()) {
            DataLoader.Batch b = l.next();
            assertArrayEquals(new int[]{256, 1, 28, 28}, b.images().shape());
            double mean = b.images().mean().item();
            assertEquals(0, mean, 0.2, "normalised batch mean");
        }
    }
}
