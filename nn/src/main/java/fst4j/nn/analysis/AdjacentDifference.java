package fst4j.nn.analysis;

import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;

/**
 * Figure 5 of the paper on one feature map X (rows x columns, columns = the W axis):
 * <ul>
 * <li>adjacent difference X_ad[:, i] = X[:, i] - X[:, i+1] for i = 0 .. W-2; the last column, which has no right
 *     neighbour, is 0;</li>
 * <li>reconstruction from the even columns (what the fixed 2:4 mask keeps, 0-based even = the paper's 1, 3, 5, ...):
 *     X_r[:, i] = X[:, i] and X_r[:, i+1] = X_r[:, i] for even i, i.e. every odd column is replaced by its left
 *     neighbour; this is Information Restoration's approximation X^T ~ S(X^T) + T S(X^T).</li>
 * </ul>
 * {@link #render} draws maps side by side, each normalised to [0, 1] by its own min..max, in grey.
 */
public final class AdjacentDifference {
    private AdjacentDifference() {}

    public static float[][] difference(float[][] x) {
        float[][] d = new float[x.length][];
        for (int y = 0; y < x.length; y++) {
            int w = x[y].length;
            d[y] = new float[w];
            for (int i = 0; i + 1 < w; i++) d[y][i] = x[y][i] - x[y][i + 1];
        }
        return d;
    }

    public static float[][] reconstruction(float[][] x) {
        float[][] r = new float[x.length][];
        for (int y = 0; y < x.length; y++) {
            int w = x[y].length;
            r[y] = new float[w];
            for (int i = 0; i < w; i += 2) {
                r[y][i] = x[y][i];
                if (i + 1 < w) r[y][i + 1] = r[y][i];
            }
        }
        return r;
    }

    /** ||a - b|| / ||b|| (Frobenius); 0 when b is all zero and a equals it. */
    public static double relativeError(float[][] a, float[][] b) {
        double num = 0, den = 0;
        for (int y = 0; y < b.length; y++)
            for (int i = 0; i < b[y].length; i++) {
                double d = a[y][i] - b[y][i];
                num += d * d;
                den += (double) b[y][i] * b[y][i];
            }
        return den == 0 ? (num == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(num / den);
    }

    /** m mapped to [0, 1] by its min..max (a constant map becomes all 0). */
    public static float[][] normalise(float[][] m) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float[] row : m) for (float v : row) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        float[][] o = new float[m.length][];
        for (int y = 0; y < m.length; y++) {
            o[y] = new float[m[y].length];
            for (int i = 0; i < m[y].length; i++) o[y][i] = hi > lo ? (m[y][i] - lo) / (hi - lo) : 0f;
        }
        return o;
    }

    /** The panels side by side, each normalised to [0, 1] and scaled up by scale (nearest), captioned, with a title. */
    public static BufferedImage render(String title, String[] captions, float[][][] panels, int scale) {
        if (captions.length != panels.length) throw new IllegalArgumentException("one caption per panel");
        if (System.getProperty("java.awt.headless") == null) System.setProperty("java.awt.headless", "true");
        int gap = 16, pad = 12, capH = 22, titleH = title.isEmpty() ? 0 : 26;
        int h = 0, w = pad;
        for (float[][] p : panels) { h = Math.max(h, p.length * scale); w += p[0].length * scale + gap; }
        w += pad - gap;
        w = Math.max(w, 360);
        int height = pad + titleH + h + capH + pad;
        BufferedImage img = new BufferedImage(w, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, w, height);
            g.setColor(TEXT);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
            if (!title.isEmpty()) text(g, title, w / 2.0, pad);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 13));
            int x0 = pad, y0 = pad + titleH;
            for (int k = 0; k < panels.length; k++) {
                float[][] n = normalise(panels[k]);
                for (int y = 0; y < n.length; y++)
                    for (int i = 0; i < n[y].length; i++) {
                        int v = Math.round(n[y][i] * 255);
                        g.setColor(new Color(v, v, v));
                        g.fillRect(x0 + i * scale, y0 + y * scale, scale, scale);
                    }
                g.setColor(TEXT);
                g.drawRect(x0 - 1, y0 - 1, n[0].length * scale + 1, n.length * scale + 1);
                text(g, captions[k], x0 + n[0].length * scale / 2.0, y0 + h + 4);
                x0 += n[0].length * scale + gap;
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    private static final Color TEXT = new Color(0x111111);

    /** s centred on x with its top at y. */
    private static void text(Graphics2D g, String s, double x, double y) {
        FontMetrics fm = g.getFontMetrics();
        g.drawString(s, (float) (x - fm.stringWidth(s) / 2.0), (float) (y + fm.getAscent()));
    }
}
