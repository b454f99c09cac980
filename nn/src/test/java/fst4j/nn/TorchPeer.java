package fst4j.nn;

import org.junit.jupiter.api.Assumptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A Python that imports torch, for tests that compare with PyTorch: FST4J_PYTHON, python3, /usr/bin/python3 (the
 * candidates of ./fst4j's torch_python). Where none does, the test is aborted (skipped) with the reason.
 */
final class TorchPeer {
    private TorchPeer() {}

    static String python() throws InterruptedException {
        List<String> tried = new ArrayList<>();
        String env = System.getenv("FST4J_PYTHON");
        for (String p : env == null || env.isBlank() ? List.of("python3", "/usr/bin/python3") : List.of(env, "python3", "/usr/bin/python3")) {
            try {
                Process pr = new ProcessBuilder(p, "-c", "import torch; print(torch.__version__)").redirectErrorStream(true).start();
                String out = new String(pr.getInputStream().readAllBytes()).trim();
                if (!pr.waitFor(60, TimeUnit.SECONDS)) { pr.destroyForcibly(); tried.add(p + ": timed out"); continue; }
                if (pr.exitValue() == 0) return p;
                String[] lines = out.split("\n");
                tried.add(p + ": " + lines[lines.length - 1]);
            } catch (java.io.IOException e) {
                tried.add(p + ": " + e.getMessage());
            }
        }
        Assumptions.abort("no Python that imports torch (set FST4J_PYTHON to one): " + String.join("; ", tried));
        throw new AssertionError();
    }

    /** A list literal of the exact values (a float's repr as a double is exact). */
    static String list(double[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) sb.append(i > 0 ? "," : "").append(v[i]);
        return sb.append("]").toString();
    }

    /**
     * Runs script (which prints lines "key v1 v2 ...") and returns the values by key. Fails the test on a non-zero exit
     * status, with the script's output.
     */
    static Map<String, double[]> run(Path dir, String script) throws Exception {
        String python = python();
        Path file = dir.resolve("peer.py");
        Files.writeString(file, script);
        Process pr = new ProcessBuilder(python, file.toString()).redirectErrorStream(true).start();
        String out = new String(pr.getInputStream().readAllBytes());
        if (!pr.waitFor(120, TimeUnit.SECONDS)) { pr.destroyForcibly(); throw new AssertionError("torch timed out"); }
        if (pr.exitValue() != 0) throw new AssertionError(python + " failed:\n" + out);
        Map<String, double[]> values = new HashMap<>();
        for (String line : out.lines().toList()) {
            String[] p = line.trim().split(" +");
            if (p.length == 0 || p[0].isEmpty()) continue;
            double[] v = new double[p.length - 1];
            for (int i = 1; i < p.length; i++)
                v[i - 1] = switch (p[i]) { case "nan" -> Double.NaN; case "inf" -> Double.POSITIVE_INFINITY; case "-inf" -> Double.NEGATIVE_INFINITY;
                    default -> Double.parseDouble(p[i]); };
            values.put(p[0], v);
        }
        return values;
    }
}
