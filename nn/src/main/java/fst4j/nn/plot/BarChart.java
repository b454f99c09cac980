package fst4j.nn.plot;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A bar chart with error bars: one bar per method at its mean, with a whisker of +- std (for example test accuracy
 * over seeds), the value written above each bar, rendered with Java2D and written as PNG.
 * <pre>{@code
 * new BarChart("Fashion-MNIST test accuracy (5 seeds)", "accuracy %")
 *         .add("dense", 91.2, 0.2).add("2:4 FST", 90.8, 0.3).yRange(88, 92).write(Path.of("acc.png"), 800, 500);
 * }</pre>
 * The y axis starts at 0 (or below the lowest bar when some are negative) unless {@link #yRange} sets it.
 */
public final class BarChart {
    private record Bar(String name, double mean, double std, Color color) {}

    private final String title, yLabel;
    private final List<Bar> bars = new ArrayList<>();
    private double yMin = Double.NaN, yMax = Double.NaN;
    private int decimals = -1;

    public BarChart(String title, String yLabel) {
        this.title = title == null ? "" : title;
        this.yLabel = yLabel == null ? "" : yLabel;
    }

    /** Adds a bar at mean with an error bar of +- std (std 0 or NaN: no error bar). */
    public BarChart add(String name, double mean, double std) {
        if (!Double.isFinite(mean)) throw new IllegalArgumentException("bar " + name + " has a non-finite mean " + mean);
        if (std < 0) throw new IllegalArgumentException("bar " + name + " has a negative std " + std);
        bars.add(new Bar(name, mean, std, Plot.color(bars.size())));
        return this;
    }

    /** Adds a bar for the mean and (sample, n-1) standard deviation of values, e.g. one accuracy per seed. */
    public BarChart add(String name, double[] values) {
        if (values.length == 0) throw new IllegalArgumentException("bar " + name + " has no values");
        double m = 0;
        for (double v : values) m += v;
        m /= values.length;
        double q = 0;
        for (double v : values) q += (v - m) * (v - m);
        return add(name, m, values.length > 1 ? Math.sqrt(q / (values.length - 1)) : 0);
    }

    /** Fixes the y range (bars start at min). */
    public BarChart yRange(double min, double max) {
        if (!(min < max)) throw new IllegalArgumentException("y range needs min < max, got " + min + ", " + max);
        yMin = min;
        yMax = max;
        return this;
    }

    /** Decimals of the value labels above the bars (default: from the tick step). */
    public BarChart decimals(int d) { decimals = d; return this; }

    /** The colour bar i is drawn in. */
    public static Color barColor(int i) { return Plot.color(i); }

    public void write(Path png, int width, int height) throws IOException { Plot.writePng(render(width, height), png); }

    public BufferedImage render(int width, int height) {
        BufferedImage img = Plot.canvas(width, height);
        Graphics2D g = Plot.graphics(img);
        try {
            draw(g, width, height);
        } finally {
            g.dispose();
        }
        return img;
    }

    private void draw(Graphics2D g, int width, int height) {
        Font base = Plot.font(height, Font.PLAIN, 1f);
        Font small = Plot.font(height, Font.PLAIN, 0.85f);
        Font titleFont = Plot.font(height, Font.BOLD, 1.25f);

        double lo = 0, hi = 0;
        for (Bar b : bars) {
            double e = Double.isNaN(b.std()) ? 0 : b.std();
            lo = Math.min(lo, b.mean() - e);
            hi = Math.max(hi, b.mean() + e);
        }
        if (bars.isEmpty()) hi = 1;
        Plot.Ticks yt = Plot.ticks(lo, hi + (hi - lo) * 0.08, 6); // headroom for the value labels
        if (!Double.isNaN(yMin)) yt = new Plot.Ticks(yMin, yMax, Plot.ticks(yMin, yMax, 6).step());
        int dec = decimals >= 0 ? decimals : (int) Math.max(0, Math.ceil(-Math.log10(yt.step()) + 1 - 1e-9));

        g.setFont(base);
        FontMetrics fm = g.getFontMetrics();
        int yLabelW = 0;
        for (double v : yt.values()) yLabelW = Math.max(yLabelW, fm.stringWidth(Plot.format(v, yt.step())));
        int left = 12 + fm.getHeight() + 6 + yLabelW + 8, right = 20;
        int top = 14 + (title.isEmpty() ? 0 : g.getFontMetrics(titleFont).getHeight() + 8);
        int bottom = 12 + fm.getHeight() + 10;
        int pw = width - left - right, ph = height - top - bottom;
        final double fl = yt.lo(), fh = yt.hi();
        java.util.function.DoubleUnaryOperator sy = v -> top + ph - (Math.max(fl, Math.min(fh, v)) - fl) / (fh - fl) * ph;

        g.setColor(Plot.TEXT);
        if (!title.isEmpty()) {
            g.setFont(titleFont);
            Plot.text(g, Plot.fit(g, title, width - 20), left + pw / 2.0, 12, 0.5, 0);
        }
        g.setFont(base);
        Plot.textRotated(g, yLabel, 10 + fm.getAscent() / 2.0, top + ph / 2.0);
        g.setStroke(new BasicStroke(1f));
        for (double v : yt.values()) {
            if (v < fl - 1e-9 * yt.step() || v > fh + 1e-9 * yt.step()) continue;
            int py = (int) Math.round(sy.applyAsDouble(v));
            g.setColor(Plot.GRID);
            g.drawLine(left, py, left + pw, py);
            g.setColor(Plot.AXIS);
            g.drawLine(left - 5, py, left, py);
            g.setColor(Plot.TEXT);
            Plot.text(g, Plot.format(v, yt.step()), left - 8, py, 1, 0.5);
        }
        if (bars.isEmpty()) {
            g.setColor(Plot.AXIS);
            g.drawRect(left, top, pw, ph);
            Plot.text(g, "no data", left + pw / 2.0, top + ph / 2.0, 0.5, 0.5);
            return;
        }

        int n = bars.size();
        double slot = (double) pw / n;
        int bw = (int) Math.max(4, Math.min(slot * 0.62, 140));
        double base0 = sy.applyAsDouble(Math.max(fl, Math.min(fh, 0)));
        for (int i = 0; i < n; i++) {
            Bar b = bars.get(i);
            double cx = left + slot * (i + 0.5);
            double top0 = sy.applyAsDouble(b.mean());
            int y0 = (int) Math.round(Math.min(base0, top0)), y1 = (int) Math.round(Math.max(base0, top0));
            g.setColor(b.color());
            g.fillRect((int) Math.round(cx - bw / 2.0), y0, bw, Math.max(1, y1 - y0));
            double labelY = top0;
            if (b.std() > 0) {
                double ea = sy.applyAsDouble(b.mean() + b.std()), eb = sy.applyAsDouble(b.mean() - b.std());
                g.setColor(Plot.AXIS);
                g.setStroke(new BasicStroke(1.6f));
                int cap = Math.max(4, bw / 5), x = (int) Math.round(cx);
                g.drawLine(x, (int) Math.round(ea), x, (int) Math.round(eb));
                g.drawLine(x - cap, (int) Math.round(ea), x + cap, (int) Math.round(ea));
                g.drawLine(x - cap, (int) Math.round(eb), x + cap, (int) Math.round(eb));
                labelY = Math.min(ea, top0);
            }
            g.setColor(Plot.TEXT);
            g.setFont(small);
            String val = String.format(Locale.ROOT, "%." + dec + "f", b.mean())
                    + (b.std() > 0 ? String.format(Locale.ROOT, " \u00b1 %." + dec + "f", b.std()) : "");
            if (b.mean() >= 0) {
                Plot.text(g, Plot.fit(g, val, (int) slot - 2), cx, Math.max(top + 2, labelY - 4), 0.5, 1);
            } else { // below a negative bar and its error bar
                double below = b.std() > 0 ? Math.max(top0, sy.applyAsDouble(b.mean() - b.std())) : top0;
                Plot.text(g, Plot.fit(g, val, (int) slot - 2), cx, Math.min(top + ph - 2 - g.getFontMetrics().getHeight(), below + 4), 0.5, 0);
            }
            g.setFont(base);
            Plot.text(g, Plot.fit(g, b.name(), (int) slot - 4), cx, top + ph + 8, 0.5, 0);
        }
        g.setColor(Plot.AXIS);
        g.setStroke(new BasicStroke(1f));
        g.drawRect(left, top, pw, ph);
    }
}
