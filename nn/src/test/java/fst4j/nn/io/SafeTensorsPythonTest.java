package fst4j.nn.io;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** Python's own safetensors package reads what we write (skipped, with the reason, where it is not installed). */
class SafeTensorsPythonTest {
    private static String python(String code) throws Exception {
        Process p = new ProcessBuilder(List.of("python3", "-c", code)).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS)) { p.destroyForcibly(); throw new AssertionError("python3 timed out"); }
        return p.exitValue() + ":" + out.trim();
    }

    @Test
    void pythonSafetensorsOpensOurFile(@TempDir Path dir) throws Exception {
        String probe;
        try {
            probe = python("import safetensors.numpy, numpy; print('ok')");
        } catch (java.io.IOException e) {
            probe = "no python3";
        }
        Assumptions.assumeTrue(probe.equals("0:ok"), "python3 with the safetensors package is not installed (pip install safetensors numpy): " + probe);
        Path f = dir.resolve("t.safetensors");
        try (Scope s = Scope.open()) {
            Map<String, Tensor> ts = new LinkedHashMap<>();
            ts.put("w", Tensor.of(new float[]{1.5f, -2f, 3f, 4.25f, 5f, -6f}, 2, 3));
            ts.put("b", Tensor.of(new double[]{0.125, 7}, 2));
            SafeTensors.write(f, ts, Map.of("step", new long[]{42, -1}), Map.of("method", "fst3_ir"));
        }
        String out = python("from safetensors import safe_open\n"
                + "f = safe_open(r'" + f + "', framework='numpy')\n"
                + "print(f.metadata()['method'], f.get_tensor('w').tolist(), f.get_tensor('b').dtype, f.get_tensor('step').tolist())");
        assertEquals("0:fst3_ir [[1.5, -2.0, 3.0], [4.25, 5.0, -6.0]] float64 [42, -1]", out);
    }
}
