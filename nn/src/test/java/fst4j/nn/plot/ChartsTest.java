package fst4j.nn.plot;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ChartsTest {
    @TempDir Path dir;

    /** Where the test charts are also copied, for a look (target/charts). */
    static final Path KEEP = Path.of("target", "charts");

    static int count(BufferedImage img, Color c) {
        int n = 0, rgb = c.getRGB() & 0xFFFFFF;
        for (int y = 0; y < img.getHeight(); y++)
            for (int x = 0; x < img.getWidth(); x++) if ((img.getRGB(x, y) & 0xFFFFFF) == rgb) n++;
        return n;
    }

    static BufferedImage readPng(Path f, int w, int h) throws IOException {
        byte[] b = Files.readAllBytes(f);
        assertTrue(b.length > 8 && (b[0] & 0xFF) == 0x89 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G', "PNG signature");
        BufferedImage img = ImageIO.read(f.toFile());
        assertNotNull(img, "ImageIO reads it");
        assertEquals(w, img.getWidth());
        assertEquals(h, img.getHeight());
        return img;
    }

    static void keep(Path f) throws IOException {
        Files.createDirectories(KEEP);
        Files.copy(f, KEEP.resolve(f.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    @Test
    void lineChartWithSeveralSeries() throws IOException {
        int n = 500;
        double[] steps = new double[n], dense = new double[n], fst = new double[n], srste = new double[n];
        for (int i = 0; i < n; i++) {
            steps[i] = i * 10;
            dense[i] = 2.3 * Math.exp(-i / 80.0) + 0.25 + 0.03 * Math.sin(i);
            fst[i] = 2.3 * Math.exp(-i / 90.0) + 0.28 + 0.03 * Math.cos(i * 1.3);
            srste[i] = 2.3 * Math.exp(-i / 120.0) + 0.33 + 0.03 * Math.sin(i * 0.7);
        }
        srste[250] = Double.NaN; // a gap
        Path f = dir.resolve("loss.png");
        new LineChart("Fashion-MNIST training loss", "step", "cross-entropy loss")
                .add("dense", steps, dense).add("2:4 FST (ours)", steps, fst).add("SR-STE", steps, srste)
                .write(f, 900, 560);
        BufferedImage img = readPng(f, 900, 560);
        for (int i = 0; i < 3; i++) {
            int c = count(img, LineChart.seriesColor(i));
            assertTrue(c > 400, "series " + i + " has only " + c + " pixels of its colour");
        }
        assertTrue(count(img, Color.WHITE) > 900 * 560 / 3, "mostly white background");
        assertTrue(count(img, Plot.GRID) > 1000, "grid lines");
        keep(f);

        Path g = dir.resolve("loss-log.png");
        new LineChart("log scale", "step", "loss").add("a", dense).add("b", new float[]{3f, 1f, 0.3f, 0.1f, 0.05f}).logY(true).write(g, 640, 400);
        BufferedImage lg = readPng(g, 640, 400);
        assertTrue(count(lg, LineChart.seriesColor(1)) > 100);
        keep(g);
    }

    @Test
    void degenerateLineCharts() throws IOException {
        // no series, a constant series, a single point, all-NaN: all render without exceptions
        assertEquals(300, new LineChart("empty", "x", "y").render(300, 200).getWidth());
        BufferedImage c = new LineChart(null, null, null).add("const", new double[]{5, 5, 5}).render(300, 200);
        assertTrue(count(c, LineChart.seriesColor(0)) > 50);
        BufferedImage p = new LineChart("point", "x", "y").add("p", new double[]{1}, new double[]{2}).render(300, 200);
        assertTrue(count(p, LineChart.seriesColor(0)) > 10);
        new LineChart("nan", "x", "y").add("n", new double[]{Double.NaN, Double.POSITIVE_INFINITY}).render(300, 200);
        new LineChart("log of zeros", "x", "y").add("z", new double[]{0, -1, 0}).logY(true).render(300, 200);
        new LineChart("fixed", "x", "y").add("a", new double[]{-10, 10}).yRange(0, 1).render(300, 200);
        assertThrows(IllegalArgumentException.class, () -> new LineChart("t", "x", "y").add("bad", new double[2], new double[3]));
        assertThrows(IllegalArgumentException.class, () -> new LineChart("t", "x", "y").render(10, 10));
    }

    @Test
    void barChartWithErrorBars() throws IOException {
        Path f = dir.resolve("acc.png");
        new BarChart("Fashion-MNIST test accuracy (5 seeds)", "accuracy %")
                .add("dense", 91.2, 0.25).add("2:4 FST", 90.8, 0.31).add("SR-STE", new double[]{90.1, 90.5, 89.9, 90.3, 90.2})
                .add("2:4 static", 88.4, 0.6).yRange(85, 92.5)
                .write(f, 800, 500);
        BufferedImage img = readPng(f, 800, 500);
        for (int i = 0; i < 4; i++) {
            int c = count(img, BarChart.barColor(i));
            assertTrue(c > 5000, "bar " + i + " has only " + c + " pixels");
        }
        keep(f);
        Path g = dir.resolve("signed.png");
        new BarChart("signed", "delta").add("up", 1.5, 0.2).add("down", -0.7, 0.1).add("none", 0, 0).write(g, 400, 300);
        BufferedImage s = readPng(g, 400, 300);
        assertTrue(count(s, BarChart.barColor(0)) > 500 && count(s, BarChart.barColor(1)) > 200);
        keep(g);
        assertEquals(300, new BarChart("empty", "y").render(300, 200).getWidth());
    }

    @Test
    void ticksAreNice() {
        Plot.Ticks t = Plot.ticks(0.13, 2.61, 6);
        assertEquals(0.5, t.step(), 1e-12);
        assertEquals(0, t.lo(), 1e-12);
        assertEquals(3.0, t.hi(), 1e-12);
        assertEquals(7, t.values().size());
        assertEquals("0.5", Plot.format(0.5, 0.5));
        assertEquals("1000", Plot.format(1000, 200));
        assertEquals("0.02", Plot.format(0.02, 0.01));
        Plot.Ticks c = Plot.ticks(3, 3, 6);   // constant data gets a range around it
        assertTrue(c.lo() < 3 && c.hi() > 3);
    }
}
