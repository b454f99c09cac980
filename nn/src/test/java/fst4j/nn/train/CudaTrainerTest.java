package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.shim.Cuda;
import fst4j.tensor.Blas;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The trainer with its model on CUDA: the same losses, accuracy and final weights as on the CPU (within float32
 * rounding of differently ordered sums), and checkpoint / resume on the device bit for bit (the kernels are
 * deterministic). Against the device or the host emulator (skipped with the reason otherwise); the CLI's
 * {@code --device} flag is checked everywhere.
 */
class CudaTrainerTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    private static void assumeCuda() { assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status()); }

    @Test
    void trainingOnCudaFollowsTheCpuRun() {
        assumeCuda();
        for (Method m : new Method[] { Method.DENSE, Method.FST3_IR }) {
            TrainData data = CheckpointTest.tiny();
            try (Trainer cpu = new Trainer(CheckpointTest.cfg(m, "cnn"), data); Trainer gpu = new Trainer(CheckpointTest.cfg(m, "cnn"), data, Device.CUDA)) {
                assertEquals(Device.CUDA, gpu.device());
                for (int i = 0; i < 6; i++) {
                    if (!cpu.epochHasNext()) {
                        Trainer.Eval ec = cpu.evaluate(), eg = gpu.evaluate();
                        assertEquals(ec.loss(), eg.loss(), 1e-4 * Math.abs(ec.loss()), m + ": test loss");
                        cpu.endEpoch();
                        gpu.endEpoch();
                    }
                    Trainer.StepResult a = cpu.trainStep(), b = gpu.trainStep();
                    assertEquals(a.loss(), b.loss(), 1e-4 * Math.abs(a.loss()), m + ": loss of step " + i);
                }
                Map<String, Tensor> sc = cpu.model().stateDict(), sg = gpu.model().stateDict();
                for (String k : sc.keySet()) {
                    assertEquals(Device.CUDA, sg.get(k).device(), k);
                    float[] x = sc.get(k).toFloatArray(), y = sg.get(k).toFloatArray();
                    double num = 0, den = 0;
                    for (int j = 0; j < x.length; j++) { num += (x[j] - y[j]) * (double) (x[j] - y[j]); den += (double) x[j] * x[j]; }
                    assertTrue(Math.sqrt(num / Math.max(den, 1e-30)) < 1e-3, m + ": " + k + " after 6 steps");
                }
            }
        }
    }

    @Test
    void resumeOnCudaIsBitIdentical(@TempDir Path dir) throws Exception {
        assumeCuda();
        TrainData data = CheckpointTest.tiny();
        Path ckpt = dir.resolve("ckpt.safetensors");
        TrainConfig cfg = CheckpointTest.cfg(Method.FST3_IR, "cnn");
        try (Trainer straight = new Trainer(cfg, data, Device.CUDA); Trainer first = new Trainer(cfg, data, Device.CUDA)) {
            CheckpointTest.run(straight, 8);
            CheckpointTest.run(first, 5);
            first.save(ckpt);
            try (Trainer resumed = new Trainer(Trainer.readConfig(ckpt), data, Device.CUDA)) {
                resumed.load(ckpt);
                CheckpointTest.run(resumed, 3);
                CheckpointTest.assertSameState(straight, resumed);
            }
        }
    }

    @Test
    void theDeviceFlagIsParsedAndAMissingDeviceIsOneLine() throws Exception {
        assertEquals(Device.CUDA, Main.parse(new String[] { "--device", "cuda" }).device());
        assertEquals(Device.CPU, Main.parse(new String[0]).device());
        assertThrows(fst4j.nn.cli.Cli.UsageException.class, () -> Main.parse(new String[] { "--device", "tpu" }));
        assumeTrue(!Cuda.isAvailable(), "CUDA is available here");
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        Path outDir = java.nio.file.Files.createTempDirectory("fst4j-cuda-train");
        int rc = Main.run(new String[] { "--device", "cuda", "--model", "cnn", "--method", "dense", "--batch", "16", "--no-progress", "--out", outDir.toString() },
                new PrintStream(out), new PrintStream(err), spec -> CheckpointTest.tiny());
        assertEquals(1, rc, out + "\n" + err);
        assertTrue(err.toString().contains("CUDA is not available: " + Cuda.status()), err.toString());
    }
}
