package fst4j.nn.plot;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.AffineTransform;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** Shared drawing helpers for the charts: palette, nice ticks, number format, frame, legend, PNG output. */
final class Plot {
    private Plot() {}

    static {
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
    }

    /** matplotlib's tab10 colours. */
    static final Color[] PALETTE = {
            new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728), new Color(0x9467bd),
            new Color(0x8c564b), new Color(0xe377c2), new Color(0x7f7f7f), new Color(0xbcbd22), new Color(0x17becf)};
    static final Color GRID = new Color(0xe6e6e6), AXIS = new Color(0x333333), TEXT = new Color(0x111111);

    static Color color(int i) { return PALETTE[Math.floorMod(i, PALETTE.length)]; }

    static BufferedImage canvas(int width, int height) {
        if (width < 200 || height < 150) throw new IllegalArgumentException("chart size must be at least 200x150, got " + width + "x" + height);
        return new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    }

    static Graphics2D graphics(BufferedImage img) {
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_STROKE_CONTROL, RenderingHints.VALUE_STROKE_NORMALIZE); // crisp 1-px grid lines
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, img.getWidth(), img.getHeight());
        return g;
    }

    static Font font(int height, int style, float scale) {
        return new Font(Font.SANS_SERIF, style, Math.max(9, Math.round(height / 42f * scale)));
    }

    /** Writes img as PNG via a temporary file in the same directory, then a move over file. */
    static void writePng(BufferedImage img, Path file) throws IOException {
        Path target = file.toAbsolutePath();
        Files.createDirectories(target.getParent());
        Path tmp = fst4j.nn.io.IoText.sibling(target, ".tmp");
        Files.createFile(tmp);
        try {
            if (!ImageIO.write(img, "png", tmp.toFile())) throw new IOException("no PNG writer in this JDK");
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    // ------------------------------------------------------------------ ticks

    /** A "nice" number near x (1, 2, 5 times a power of ten): rounded, or the next one up. */
    static double nice(double x, boolean round) {
        double e = Math.floor(Math.log10(x));
        double f = x / Math.pow(10, e);
        double nf = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) : (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10);
        return nf * Math.pow(10, e);
    }

    /** Axis range and ticks: lo, hi (multiples of step) and step, for data in [min, max]. */
    record Ticks(double lo, double hi, double step) {
        List<Double> values() {
            List<Double> v = new ArrayList<>();
            for (long k = Math.round(lo / step); k * step <= hi + step * 1e-9; k++) v.add(k * step);
            return v;
        }
    }

    static Ticks ticks(double min, double max, int target) {
        if (!(min <= max) || Double.isInfinite(min) || Double.isInfinite(max)) { min = 0; max = 1; }
        if (max - min < Math.max(Math.abs(max), 1e-300) * 1e-12) { // a constant: pad around it
            double pad = min == 0 ? 1 : Math.abs(min) * 0.1;
            min -= pad;
            max += pad;
        }
        double step = nice((max - min) / Math.max(target - 1, 1), true);
        return new Ticks(Math.floor(min / step) * step, Math.ceil(max / step) * step, step);
    }

    /** Tick label for v on an axis of this step: as few decimals as the step needs, or scientific. */
    static String format(double v, double step) {
        if (v == 0 || Math.abs(v) < step * 1e-9) return "0";
        double a = Math.abs(v);
        if (a >= 1e6 || a < 1e-4) return String.format(Locale.ROOT, "%.2g", v).replace("e+0", "e").replace("e-0", "e-").replace("e+", "e");
        int decimals = (int) Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
        return String.format(Locale.ROOT, "%." + Math.min(decimals, 8) + "f", v);
    }

    // ------------------------------------------------------------------ text

    static void text(Graphics2D g, String s, double x, double y, double alignX, double alignY) {
        FontMetrics fm = g.getFontMetrics();
        float tx = (float) (x - fm.stringWidth(s) * alignX);
        float ty = (float) (y - (fm.getAscent() + fm.getDescent()) * alignY + fm.getAscent());
        g.drawString(s, tx, ty);
    }

    static void textRotated(Graphics2D g, String s, double x, double y) {
        AffineTransform old = g.getTransform();
        g.rotate(-Math.PI / 2, x, y);
        text(g, s, x, y, 0.5, 0);
        g.setTransform(old);
    }

    /** Shortens s with "..." to fit maxWidth pixels. */
    static String fit(Graphics2D g, String s, int maxWidth) {
        FontMetrics fm = g.getFontMetrics();
        if (fm.stringWidth(s) <= maxWidth) return s;
        String t = s;
        while (t.length() > 1 && fm.stringWidth(t + "...") > maxWidth) t = t.substring(0, t.length() - 1);
        return t + "...";
    }

    // ------------------------------------------------------------------ legend

    /** Legend box in the top-right corner of the plot area [px, py, pw, ph]; swatch is a line (true) or a block. */
    static void legend(Graphics2D g, List<String> names, List<Color> colors, int px, int py, int pw, boolean lines) {
        if (names.isEmpty()) return;
        FontMetrics fm = g.getFontMetrics();
        int row = fm.getHeight() + 2, sw = 22, pad = 6;
        int tw = 0;
        for (String n : names) tw = Math.max(tw, fm.stringWidth(n));
        tw = Math.min(tw, pw / 2);
        int bw = pad * 3 + sw + tw, bh = pad * 2 + row * names.size();
        int bx = px + pw - bw - 8, by = py + 8;
        g.setColor(new Color(255, 255, 255, 225));
        g.fillRect(bx, by, bw, bh);
        g.setColor(new Color(0xbbbbbb));
        g.setStroke(new BasicStroke(1f));
        g.drawRect(bx, by, bw, bh);
        for (int i = 0; i < names.size(); i++) {
            int cy = by + pad + row * i + row / 2;
            g.setColor(colors.get(i));
            if (lines) {
                g.setStroke(new BasicStroke(3f, BasicStroke.CAP_BUTT, BasicStroke.JOIN_MITER));
                g.drawLine(bx + pad, cy, bx + pad + sw, cy);
            } else {
                g.fillRect(bx + pad, cy - row / 3, sw, 2 * row / 3);
            }
            g.setColor(TEXT);
            text(g, fit(g, names.get(i), tw), bx + 2 * pad + sw, cy, 0, 0.5);
        }
    }
}
