package fst4j.nn.plot;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A line chart of named series (for example the training loss per step of several methods), with a title, axis
 * labels, ticks, grid and a legend, rendered with Java2D and written as PNG.
 * <pre>{@code
 * new LineChart("Fashion-MNIST training loss", "step", "loss")
 *         .add("dense", steps, denseLoss).add("2:4 FST", steps, fstLoss)
 *         .logY(true).write(Path.of("loss.png"), 900, 560);
 * }</pre>
 * Non-finite points (and, on a log axis, non-positive ones) are skipped and break the line.
 */
public final class LineChart {
    private record Series(String name, double[] x, double[] y, Color color) {}

    private final String title, xLabel, yLabel;
    private final List<Series> series = new ArrayList<>();
    private boolean logY;
    private double yMin = Double.NaN, yMax = Double.NaN;

    public LineChart(String title, String xLabel, String yLabel) {
        this.title = title == null ? "" : title;
        this.xLabel = xLabel == null ? "" : xLabel;
        this.yLabel = yLabel == null ? "" : yLabel;
    }

    /** Adds a series with x values; x and y must have the same length. Colours follow the palette in order. */
    public LineChart add(String name, double[] x, double[] y) {
        if (x.length != y.length) throw new IllegalArgumentException("series " + name + ": " + x.length + " x values but " + y.length + " y values");
        series.add(new Series(name, x.clone(), y.clone(), Plot.color(series.size())));
        return this;
    }

    /** Adds a series plotted against 0, 1, 2, ... */
    public LineChart add(String name, double[] y) {
        double[] x = new double[y.length];
        for (int i = 0; i < x.length; i++) x[i] = i;
        return add(name, x, y);
    }

    /** Adds a series from float values (e.g. a loss log) against 0, 1, 2, ... */
    public LineChart add(String name, float[] y) {
        double[] d = new double[y.length];
        for (int i = 0; i < d.length; i++) d[i] = y[i];
        return add(name, d);
    }

    /** Logarithmic y axis (decades). */
    public LineChart logY(boolean log) { logY = log; return this; }

    /** Fixes the y range instead of fitting the data (values outside are clipped). */
    public LineChart yRange(double min, double max) {
        if (!(min < max)) throw new IllegalArgumentException("y range needs min < max, got " + min + ", " + max);
        yMin = min;
        yMax = max;
        return this;
    }

    /** The colour series i is drawn in (the palette, in the order series were added). */
    public static Color seriesColor(int i) { return Plot.color(i); }

    public void write(Path png, int width, int height) throws IOException { Plot.writePng(render(width, height), png); }

    private double ty(double v) { return logY ? (v > 0 ? Math.log10(v) : Double.NaN) : v; }

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
        Font titleFont = Plot.font(height, Font.BOLD, 1.25f);

        // data ranges (in transformed y)
        double x0 = Double.POSITIVE_INFINITY, x1 = Double.NEGATIVE_INFINITY, y0 = Double.POSITIVE_INFINITY, y1 = Double.NEGATIVE_INFINITY;
        for (Series s : series)
            for (int i = 0; i < s.x().length; i++) {
                double x = s.x()[i], y = ty(s.y()[i]);
                if (!Double.isFinite(x) || !Double.isFinite(y)) continue;
                x0 = Math.min(x0, x); x1 = Math.max(x1, x);
                y0 = Math.min(y0, y); y1 = Math.max(y1, y);
            }
        boolean empty = x0 > x1;
        if (!Double.isNaN(yMin)) { y0 = ty(yMin); y1 = ty(yMax); }
        Plot.Ticks xt = Plot.ticks(empty ? 0 : x0, empty ? 1 : x1, 7);
        Plot.Ticks yt = logY ? logTicks(empty ? 0 : y0, empty ? 1 : y1) : Plot.ticks(empty ? 0 : y0, empty ? 1 : y1, 6);
        if (!Double.isNaN(yMin)) yt = new Plot.Ticks(y0, y1, yt.step());
        // fit the x range to the data when ticks overshoot a lot (e.g. steps 0..1000 stay 0..1000)
        double xl = empty ? xt.lo() : x0, xh = empty ? xt.hi() : (x1 > x0 ? x1 : xt.hi());
        if (!empty && x1 == x0) xl = xt.lo();

        // layout
        g.setFont(base);
        FontMetrics fm = g.getFontMetrics();
        int yLabelW = 0;
        List<Double> yTicks = yt.values();
        if (logY && yt.step() == 1 && yt.hi() - yt.lo() <= 2) { // few decades: also 2x and 5x
            List<Double> more = new ArrayList<>();
            for (double v : yTicks) {
                more.add(v);
                if (v < yt.hi()) { more.add(v + Math.log10(2)); more.add(v + Math.log10(5)); }
            }
            yTicks = more;
        }
        for (double v : yTicks) yLabelW = Math.max(yLabelW, fm.stringWidth(yTickLabel(v, yt.step())));
        int left = 12 + fm.getHeight() + 6 + yLabelW + 8;
        int right = 20;
        int top = 14 + (title.isEmpty() ? 0 : g.getFontMetrics(titleFont).getHeight() + 8);
        int bottom = 10 + fm.getHeight() * 2 + 14;
        int pw = width - left - right, ph = height - top - bottom;

        // title and axis labels
        g.setColor(Plot.TEXT);
        if (!title.isEmpty()) {
            g.setFont(titleFont);
            Plot.text(g, Plot.fit(g, title, width - 20), left + pw / 2.0, 12, 0.5, 0);
        }
        g.setFont(base);
        Plot.text(g, xLabel, left + pw / 2.0, height - 8, 0.5, 1);
        Plot.textRotated(g, yLabel + (logY ? " (log)" : ""), 10 + fm.getAscent() / 2.0, top + ph / 2.0);

        // grid, ticks and tick labels
        final double fxl = xl, fxh = xh, fyl = yt.lo(), fyh = yt.hi();
        java.util.function.DoubleUnaryOperator sx = v -> left + (v - fxl) / (fxh - fxl) * pw;
        java.util.function.DoubleUnaryOperator sy = v -> top + ph - (v - fyl) / (fyh - fyl) * ph;
        g.setStroke(new BasicStroke(1f));
        for (double v : xt.values()) {
            if (v < xl - 1e-9 * Math.abs(xt.step()) || v > xh + 1e-9 * Math.abs(xt.step())) continue;
            int px = (int) Math.round(sx.applyAsDouble(v));
            g.setColor(Plot.GRID);
            g.drawLine(px, top, px, top + ph);
            g.setColor(Plot.AXIS);
            g.drawLine(px, top + ph, px, top + ph + 5);
            g.setColor(Plot.TEXT);
            Plot.text(g, Plot.format(v, xt.step()), px, top + ph + 7, 0.5, 0);
        }
        for (double v : yTicks) {
            if (v < yt.lo() - 1e-9 || v > yt.hi() + 1e-9) continue;
            int py = (int) Math.round(sy.applyAsDouble(v));
            g.setColor(Plot.GRID);
            g.drawLine(left, py, left + pw, py);
            g.setColor(Plot.AXIS);
            g.drawLine(left - 5, py, left, py);
            g.setColor(Plot.TEXT);
            Plot.text(g, yTickLabel(v, yt.step()), left - 8, py, 1, 0.5);
        }
        g.setColor(Plot.AXIS);
        g.drawRect(left, top, pw, ph);
        if (empty) {
            g.setColor(Plot.AXIS);
            Plot.text(g, "no data", left + pw / 2.0, top + ph / 2.0, 0.5, 0.5);
            return;
        }

        // series, clipped to the plot area
        java.awt.Shape oldClip = g.getClip();
        g.clipRect(left + 1, top + 1, pw - 1, ph - 1);
        g.setStroke(new BasicStroke(Math.max(2f, height / 300f), BasicStroke.CAP_ROUND, BasicStroke.JOIN_ROUND));
        for (Series s : series) {
            g.setColor(s.color());
            Path2D.Double path = new Path2D.Double();
            boolean pen = false;
            int points = 0;
            double lx = 0, ly = 0;
            for (int i = 0; i < s.x().length; i++) {
                double x = s.x()[i], y = ty(s.y()[i]);
                if (!Double.isFinite(x) || !Double.isFinite(y)) { pen = false; continue; }
                double px = sx.applyAsDouble(x), py = sy.applyAsDouble(y);
                if (pen) path.lineTo(px, py); else path.moveTo(px, py);
                pen = true;
                points++;
                lx = px;
                ly = py;
            }
            g.draw(path);
            if (points == 1) g.fillOval((int) lx - 3, (int) ly - 3, 7, 7);
        }
        g.setClip(oldClip);

        List<String> names = new ArrayList<>();
        List<Color> colors = new ArrayList<>();
        for (Series s : series) { names.add(s.name()); colors.add(s.color()); }
        Plot.legend(g, names, colors, left, top, pw, true);
    }

    private String yTickLabel(double v, double step) {
        if (!logY) return Plot.format(v, step);
        double p = Math.pow(10, v);
        double decade = Math.pow(10, Math.floor(v + 1e-9));
        p = Math.round(p / decade) * decade;   // 2x and 5x ticks print exactly
        return Plot.format(p, decade);
    }

    /** Ticks on a log10 axis: whole decades (every k-th decade when there are many). */
    private static Plot.Ticks logTicks(double lo, double hi) {
        double a = Math.floor(lo), b = Math.ceil(hi);
        if (b <= a) b = a + 1;
        double step = Math.max(1, Math.ceil((b - a) / 6));
        a = Math.floor(a / step) * step;
        b = Math.ceil(b / step) * step;
        return new Plot.Ticks(a, b, step);
    }
}
