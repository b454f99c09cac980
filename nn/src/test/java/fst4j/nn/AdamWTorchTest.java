package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * AdamW (with AMSGrad, with two parameter groups) and clipGradNorm against PyTorch's own torch.optim.AdamW and
 * torch.nn.utils.clip_grad_norm_ on the same data, a few steps; skipped, with the reason, where no Python imports torch
 * (FST4J_PYTHON, python3, /usr/bin/python3: the candidates of ./fst4j's torch_python). Not bit for bit: torch's
 * vectorised CPU add_ fuses m*beta1 + c1*g into one FMA and it sums norms in float32 (AdamW's javadoc), so within a few ulps.
 */
class AdamWTorchTest {
    private static String torchPython() throws InterruptedException { return TorchPeer.python(); }   // skips with the reason

    private static String list(float[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) sb.append(i > 0 ? "," : "").append((double) v[i]);   // the float's exact value
        return sb.append("]").toString();
    }

    private static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (scale * r.nextGaussian());
        return v;
    }

    @Test
    void aFewStepsAgreeWithTorchOptimAdamW(@TempDir Path dir) throws Exception {
        String python = torchPython();
        int[] sizes = {5, 1100};
        int steps = 4;
        SplittableRandom r = new SplittableRandom(2024);
        float[][] w0 = new float[sizes.length][];
        float[][][] grads = new float[steps][sizes.length][];
        for (int p = 0; p < sizes.length; p++) w0[p] = gaussian(r, sizes[p], 1);
        for (int s = 0; s < steps; s++) for (int p = 0; p < sizes.length; p++) grads[s][p] = gaussian(r, sizes[p], s == 2 ? 1e-3 : 1);
        double lr = 0.01, wd = 0.05, lrScale0 = 0.5, wd0 = 0.1, maxNorm = 2.0;

        StringBuilder py = new StringBuilder("import torch\ntorch.set_num_threads(1)\n");
        py.append("W0 = [").append(list(w0[0])).append(",").append(list(w0[1])).append("]\n");
        py.append("G = [");
        for (int s = 0; s < steps; s++) py.append("[").append(list(grads[s][0])).append(",").append(list(grads[s][1])).append("],");
        py.append("]\n");
        py.append(String.format(java.util.Locale.ROOT, """
                for amsgrad in (False, True):
                    ps = [torch.tensor(w, dtype=torch.float32, requires_grad=True) for w in W0]
                    opt = torch.optim.AdamW([{'params': [ps[0]], 'lr': %s * %s, 'weight_decay': %s}, {'params': [ps[1]]}],
                                            lr=%s, betas=(0.9, 0.999), eps=1e-8, weight_decay=%s, amsgrad=amsgrad)
                    norms = []
                    for s, gs in enumerate(G):
                        for p, g in zip(ps, gs):
                            p.grad = torch.tensor(g, dtype=torch.float32)
                        norms.append(float(torch.nn.utils.clip_grad_norm_(ps, %s)))
                        opt.step()
                    print('norms', *[repr(n) for n in norms])
                    for p in ps:
                        print('w', *[repr(float(v)) for v in p.detach().flatten().tolist()])
                """, lr, lrScale0, wd0, lr, wd, maxNorm));
        Path script = dir.resolve("adamw.py");
        Files.writeString(script, py);
        Process pr = new ProcessBuilder(python, script.toString()).redirectErrorStream(true).start();
        String out = new String(pr.getInputStream().readAllBytes());
        assertTrue(pr.waitFor(120, TimeUnit.SECONDS), "torch timed out");
        assertEquals(0, pr.exitValue(), out);
        List<String> lines = out.lines().toList();
        assertEquals(6, lines.size(), out);

        double worstUlps = 0;
        int line = 0;
        for (boolean amsgrad : new boolean[]{false, true}) {
            try (Scope sc = Scope.open()) {
                List<Var> ps = new ArrayList<>();
                for (int p = 0; p < sizes.length; p++) ps.add(Var.param(Tensor.of(w0[p], sizes[p])));
                List<ParamGroup> groups = List.of(new ParamGroup("first", List.of(ps.get(0)), lrScale0, wd0), ParamGroup.of(List.of(ps.get(1)), wd));
                try (AdamW opt = AdamW.withGroups(groups, lr, 0.9, 0.999, 1e-8, amsgrad)) {
                    String[] norms = lines.get(line++).split(" ");
                    assertEquals("norms", norms[0]);
                    for (int s = 0; s < steps; s++) {
                        opt.zeroGrad();
                        for (int p = 0; p < sizes.length; p++) ps.get(p).backward(Tensor.of(grads[s][p], sizes[p]));
                        double norm = GradClip.clipGradNorm(ps, maxNorm);
                        // torch's norm is a float32 sum of float32 norms: within its rounding of ours (in double)
                        assertEquals(Double.parseDouble(norms[1 + s]), norm, 1e-6 * norm, "clip_grad_norm_ at step " + s);
                        opt.step();
                    }
                    for (int p = 0; p < sizes.length; p++) {
                        String[] want = lines.get(line++).split(" ");
                        assertEquals(sizes[p] + 1, want.length);
                        float[] got = ps.get(p).value().toFloatArray();
                        for (int i = 0; i < sizes[p]; i++) {
                            float t = (float) Double.parseDouble(want[1 + i]);
                            // in ulps of what was rounded: the weight on its way, which moves by up to lr a step
                            double ulps = Math.abs(t - got[i]) / Math.ulp((float) (Math.max(Math.abs(t), Math.abs(got[i])) + steps * lr));
                            worstUlps = Math.max(worstUlps, ulps);
                            assertTrue(ulps <= 8, "amsgrad " + amsgrad + ", parameter " + p + " element " + i + ": torch " + t + ", fst4j " + got[i]);
                        }
                    }
                }
            }
        }
        System.out.println("AdamW against torch " + python + ": worst difference " + worstUlps + " ulp(s) after " + steps + " steps");
    }
}
