package fst4j.nn.plot;

/**
 * Whether the PNG charts can be drawn in this JVM. They need AWT (the java.desktop module), which a jlinked runtime may
 * leave out (gpu/prepare.sh's does: it must fit the device tool's 64 MiB); {@code -Dfst4j.plots=false} turns them off on
 * purpose. The commands then skip their charts with one line saying why, rather than failing after the training: the
 * CSV files hold every curve.
 */
public final class Plots {
    private Plots() {}

    /** True where charts can be drawn (java.desktop present, not turned off). */
    public static boolean available() { return why() == null; }

    /** Why charts are skipped, or null where they are drawn. */
    public static String why() {
        if (!Boolean.parseBoolean(System.getProperty("fst4j.plots", "true"))) return "charts turned off (-Dfst4j.plots=false)";
        if (ModuleLayer.boot().findModule("java.desktop").isEmpty())
            return "this Java runtime has no java.desktop module (AWT), which the charts need (a jlinked image?)";
        return null;
    }
}
