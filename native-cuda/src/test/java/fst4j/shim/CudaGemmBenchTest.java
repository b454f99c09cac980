package fst4j.shim;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The GEMM benchmark harness ({@link CudaGemmBench}) in its smoke mode (tiny layers, batch 1, few repetitions), so that
 * it cannot rot: on the host emulator in every build with nvcc (CI), and on a device where there is one. Every variant
 * must pass its correctness check, every time must be a finite non-negative number, and the file must hold the table.
 */
class CudaGemmBenchTest {
    @Test
    void smokeModeRunsEveryVariantAndPassesItsChecks(@TempDir Path dir) throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
        Path out = dir.resolve("gemm.txt");
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        CudaGemmBench.Result res;
        try (PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            res = CudaGemmBench.runToFile(CudaGemmBench.Config.smoke(), out, ps);
        }
        CudaGemmBench.Report rep = res.report();
        String text = Files.readString(out);
        System.out.println(text);
        List<CudaGemmBench.Layer> layers = CudaGemmBench.SMOKE;
        // Eq. 1 and 2: fp32, tf32, bf16, 2:4; Eq. 3: fp32, tf32, bf16, half-K bf16, half-K fp32
        assertEquals(15 * layers.size(), rep.rows().size(), text);
        for (CudaGemmBench.Row r : rep.rows()) {
            assertTrue(r.ok(), "check failed: " + r + "\n" + text);
            assertTrue(r.relErr() >= 0 && r.relErr() <= r.bound(), r.toString());
            assertEquals(3, r.stat().reps(), r.toString());
            assertTrue(r.stat().min() >= 0 && Double.isFinite(r.stat().max()) && r.stat().min() <= r.stat().median()
                    && r.stat().median() <= r.stat().max(), r.toString());
        }
        assertEquals(10 * layers.size(), rep.overheads().size(), text);
        for (CudaGemmBench.Overhead o : rep.overheads()) assertTrue(o.stat().min() >= 0 && Double.isFinite(o.stat().max()), o.toString());
        assertTrue(rep.ok());
        for (CudaGemmBench.Layer l : layers)
            for (String eq : List.of("Eq1", "Eq2", "Eq3"))
                assertTrue(text.lines().anyMatch(s -> s.startsWith("GEMM " + String.format("%-6s %-3s", l.name(), eq)) && s.endsWith("ok")),
                        "table line for " + l.name() + " " + eq + " missing:\n" + text);
        // the compact table comes last in the file
        List<String> lines = text.lines().filter(s -> !s.isBlank()).toList();
        assertTrue(lines.getLast().startsWith("GEMM "), lines.getLast());
        assertTrue(text.contains("check stem-s Eq1  2:4-bf16"), text);
        assertTrue(buf.toString(StandardCharsets.UTF_8).contains("time  conv-s Eq3  halfK-bf16"), "progress lines go to the log stream");
    }

    /** The fallback for a library that refuses N: the 2:4 products in column chunks, checked the same way. */
    @Test
    void sparseProductsInColumnChunksPassTheirChecks(@TempDir Path dir) throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
        CudaGemmBench.Result res = CudaGemmBench.runToFile(CudaGemmBench.Config.smoke().withMinChunks(2), dir.resolve("gemm.txt"),
                new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8));
        String text = res.text();
        assertTrue(res.report().ok(), text);
        // conv-s has N = 32: two chunks of 16; stem-s has N = 16, which cannot be split
        assertTrue(text.contains("2:4 conv-s Eq1: N = 32 split on request; running 2 matmuls of N = 16"), text);
        assertTrue(text.lines().anyMatch(s -> s.startsWith("time  conv-s Eq2  2:4-bf16") && s.contains("N in 2 chunks")), text);
        assertTrue(text.lines().anyMatch(s -> s.startsWith("time  stem-s Eq1  2:4-bf16") && !s.contains("chunks")), text);
    }

    @Test
    void aFailingCheckIsReported() {
        // the bound logic itself: an all-zero reference never passes, a mismatch is measured
        assertEquals(Double.POSITIVE_INFINITY, CudaGemmBench.relErr(new double[] { 0, 0 }, new double[] { 0, 0 }));
        assertEquals(0.5, CudaGemmBench.relErr(new double[] { 2, 0 }, new double[] { 1, 0 }), 1e-12);
        assertEquals(0.0, CudaGemmBench.relErr(new double[] { 3, -4 }, new double[] { 3, -4 }));
    }
}
