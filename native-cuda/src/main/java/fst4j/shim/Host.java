package fst4j.shim;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * The CPU a number was measured on, for benchmark headers and a training run's summary. The development hosts have
 * changed between sessions (a Zen 4, a Zen 5, an Intel Xeon) and the kernels' speeds, blockings and ratios with them, so
 * a result that does not name its CPU cannot be compared with another. Read from {@code /proc/cpuinfo} (Linux); where
 * that is missing or unreadable the fields say "unknown" (family and model -1) rather than failing a run.
 *
 * @param vendor    cpuinfo's vendor_id (GenuineIntel, AuthenticAMD, ...)
 * @param modelName cpuinfo's model name
 * @param family    cpu family as cpuinfo prints it (AMD Zen 4: 25, Zen 5: 26; Intel: 6)
 * @param model     model number
 * @param cpus      logical CPUs this JVM may use
 * @param kernels   the shim's CPU kernel family ({@link Native#isa()}), or why it is unknown
 */
public record Host(String vendor, String modelName, int family, int model, int cpus, String kernels) {

    private static volatile Host current;

    /** This machine (read once per JVM). */
    public static Host current() {
        Host h = current;
        if (h == null) {
            String info = read(Path.of("/proc/cpuinfo"));
            String kernels;
            try {
                kernels = Native.isa();
            } catch (RuntimeException | LinkageError e) {   // no shim here: the header still names the CPU
                kernels = "unknown (" + e.getMessage() + ")";
            }
            current = h = parse(info, Runtime.getRuntime().availableProcessors(), kernels);
        }
        return h;
    }

    /**
     * A cpuinfo file's text, "" where it is missing or unreadable. Decoded with replacement: Files.readString throws on a
     * byte that is not UTF-8 (a brand string can hold one), which lost every field, not just the model name.
     */
    static String read(Path cpuinfo) {
        try {
            return new String(Files.readAllBytes(cpuinfo), StandardCharsets.UTF_8);
        } catch (IOException | RuntimeException e) {
            return "";
        }
    }

    /** The first processor's fields of a cpuinfo text. */
    static Host parse(String cpuinfo, int cpus, String kernels) {
        String vendor = null, name = null, family = null, model = null;
        for (String line : cpuinfo.split("\n")) {
            if (line.isBlank()) {
                if (vendor != null || name != null) break;   // the end of the first processor's block
                continue;
            }
            int c = line.indexOf(':');
            if (c < 0) continue;
            String k = line.substring(0, c).trim(), v = line.substring(c + 1).trim();
            switch (k) {
                case "vendor_id" -> vendor = vendor == null ? v : vendor;
                case "model name" -> name = name == null ? v : name;
                case "cpu family" -> family = family == null ? v : family;
                case "model" -> model = model == null ? v : model;
                default -> { }
            }
        }
        return new Host(vendor == null ? "unknown" : vendor, name == null ? "unknown" : name, number(family), number(model), cpus, kernels);
    }

    private static int number(String s) {
        if (s == null) return -1;
        try {
            return Integer.parseInt(s);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** One line: "Intel(R) Xeon(R) Processor (GenuineIntel, family 6, model 167), 2 CPUs, kernels avx512". */
    public String describe() {
        return String.format(Locale.ROOT, "%s (%s, family %d, model %d), %d CPU%s, kernels %s",
                modelName, vendor, family, model, cpus, cpus == 1 ? "" : "s", kernels);
    }
}
