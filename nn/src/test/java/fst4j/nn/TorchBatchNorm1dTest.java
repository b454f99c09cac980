package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.train.Checkpoint;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * nn.BatchNorm1d against torch.nn.BatchNorm1d (float32): three training steps on [N, C] and on [N, C, L] (outputs, the
 * gradients of x, weight and bias, the running statistics after each), then eval mode (output and input gradient
 * from the running statistics); without affine and running statistics; and its state through a Checkpoint, read back by
 * fst4j and by torch (a safetensors file parsed in the script and loaded into torch's module, whose eval output must
 * be ours). Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class TorchBatchNorm1dTest {
    static final double RTOL = 2e-5;

    static void close(String what, double[] want, float[] got) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++)
            assertEquals(want[i], got[i], RTOL * Math.max(1, Math.abs(want[i])), what + " at " + i);
    }

    static final double U = 0x1p-24;   // a float's unit roundoff

    /**
     * Per element bounds on |ours - torch's| for one BatchNorm1d step, from the arithmetic both do in float32: each value
     * is a sum of at most n terms (n = N L values per channel) and at most 8 further roundings, so each side is within
     * (n + 8) u T of the exact value, T the sum of the magnitudes of the element's terms; the two sides differ by at most
     * 2 (n + 8) u T. The running statistics carry their own bounds from step to step (drm, drv, updated here), and eval
     * mode adds what those differences move. The terms, per channel with mu, var the batch statistics, r = 1 / sqrt(var +
     * eps), xh = (x - mu) r, a = r mean|x| (how far one ulp of the mean moves xh, per u), q = (var + mu^2) / (var + eps)
     * (the variance's error relative to var + eps, where it is computed as E[x^2] - mu^2):
     *   y: |gamma| (|xh| (1 + q) + a) + |beta|;  dx: r |gamma| (|dy| + mean|dy| + (|xh| + a) (mean|dy xh| + mean|dy|));
     *   dgamma: sum |dy| (|xh| + a);  dbeta: sum |dy|;  running mean: (1 - m) |rm| + m mean|x|;
     *   running var: (1 - m) |rv| + m n / (n - 1) (var + mu^2).
     * (It was 2e-5 max(1, |want|): 2e-5 absolute for every value below 1, 100 to 1000 float ulps of most of them.)
     */
    static Map<String, double[]> bounds(double[] xs, double[] dys, int[] shape, double[] gamma, double[] beta, double[] rm, double[] rv,
                                        double[] drm, double[] drv, double mom, double eps, boolean train) {
        int nb = shape[0], c = shape[1], l = shape.length == 3 ? shape[2] : 1, n = nb * l;
        float[] x = new float[xs.length], dy = new float[dys.length];
        for (int i = 0; i < xs.length; i++) { x[i] = (float) xs[i]; dy[i] = (float) dys[i]; }
        double k = 2.0 * (n + 8) * U;
        double[] by = new double[x.length], bdx = new double[x.length], bw = new double[c], bb = new double[c], brm = new double[c], brv = new double[c];
        for (int ch = 0; ch < c; ch++) {
            double mu = 0, ax = 0, var = 0, ady = 0, adyx = 0, sdy = 0, sdyx = 0;
            for (int i = 0; i < nb; i++) for (int j = 0; j < l; j++) { double v = x[(i * c + ch) * l + j]; mu += v / n; ax += Math.abs(v) / n; }
            for (int i = 0; i < nb; i++) for (int j = 0; j < l; j++) { double v = x[(i * c + ch) * l + j] - mu; var += v * v / n; }
            double g = gamma == null ? 1 : Math.abs(gamma[ch]), b = beta == null ? 0 : Math.abs(beta[ch]);
            double center = train ? mu : rm[ch], r = 1 / Math.sqrt((train ? var : rv[ch]) + eps), a = train ? r * ax : 0;
            double q = train ? (var + mu * mu) / (var + eps) : 0;
            for (int i = 0; i < nb; i++) for (int j = 0; j < l; j++) {
                int e = (i * c + ch) * l + j;
                double xh = Math.abs(x[e] - center) * r;
                ady += Math.abs(dy[e]) / n; adyx += Math.abs(dy[e]) * (xh + a) / n; sdy += Math.abs(dy[e]); sdyx += Math.abs(dy[e]) * (xh + a);
            }
            // eval: what the running statistics' own differences move (d xh = r drm + xh r^2 / 2 drv)
            double dm = train ? 0 : drm[ch], dv = train ? 0 : drv[ch];
            for (int i = 0; i < nb; i++) for (int j = 0; j < l; j++) {
                int e = (i * c + ch) * l + j;
                double xh = Math.abs(x[e] - center) * r, dxh = r * dm + xh * r * r / 2 * dv;
                by[e] = k * (g * (xh * (1 + q) + a + (train ? 0 : r * Math.abs(rm[ch]))) + b) + g * dxh;
                bdx[e] = train ? k * r * g * (Math.abs(dy[e]) + ady + (xh + a) * (adyx + ady))
                        : k * r * g * Math.abs(dy[e]) + g * Math.abs(dy[e]) * r * r / 2 * dv * r;
            }
            bw[ch] = k * sdyx + (train ? 0 : sdy * (r * dm) + sdyx * r * r / 2 * dv);
            bb[ch] = k * sdy;
            if (rm != null) {
                if (train) {
                    drm[ch] = (1 - mom) * drm[ch] + k * ((1 - mom) * Math.abs(rm[ch]) + mom * ax);
                    drv[ch] = (1 - mom) * drv[ch] + k * ((1 - mom) * Math.abs(rv[ch]) + mom * n / (n - 1.0) * (var + mu * mu));
                    rm[ch] = (1 - mom) * rm[ch] + mom * mu;
                    rv[ch] = (1 - mom) * rv[ch] + mom * var * n / (n - 1.0);
                }
                brm[ch] = drm[ch];
                brv[ch] = drv[ch];
            }
        }
        return Map.of("y", by, "dx", bdx, "dw", bw, "db", bb, "rm", brm, "rv", brv);
    }

    /** Element i within bound[i] of torch's (which printed it); the failure names the element and the bound. */
    static void within(String what, double[] want, float[] got, double[] bound) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++)
            if (!(Math.abs(got[i] - want[i]) <= bound[i]))
                fail(what + " at " + i + ": " + got[i] + " vs torch's " + want[i] + " (allowed " + bound[i] + ")");
    }

    static double[] uniform(SplittableRandom r, int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.nextDouble(lo, hi);
        return v;
    }

    @Test
    void trainingStepsAndEvalAgreeWithTorch(@TempDir Path dir) throws Exception {
        int c = 3;
        int[][] shapes = {{6, c}, {4, c, 5}};
        SplittableRandom r = new SplittableRandom(31);
        double[] gamma = {0.5, 1.5, -1}, beta = {0.1, -0.2, 0.3};
        double[][] xs = new double[8][], ws = new double[8][];
        for (int i = 0; i < 8; i++) {
            int n = (i / 4 == 0 ? 6 * c : 4 * c * 5);
            xs[i] = uniform(r, n, -2, 3);
            ws[i] = uniform(r, n, -1, 1);
        }
        StringBuilder data = new StringBuilder("XS = [");
        for (double[] x : xs) data.append(TorchPeer.list(x)).append(",");
        data.append("]\nWS = [");
        for (double[] w : ws) data.append(TorchPeer.list(w)).append(",");
        data.append("]\n");
        String script = String.format(Locale.ROOT, """
                import torch
                %s
                G, B = %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for k, shape in enumerate(((6, 3), (4, 3, 5))):
                    for affine in (True, False):
                        m = torch.nn.BatchNorm1d(3, eps=1e-3, momentum=0.2, affine=affine, track_running_stats=affine)
                        if affine:
                            with torch.no_grad():
                                m.weight.copy_(torch.tensor(G)); m.bias.copy_(torch.tensor(B))
                        for step in range(4):
                            if step == 3: m.eval()
                            x = torch.tensor(XS[4 * k + step], dtype=torch.float32).reshape(shape).requires_grad_()
                            y = m(x)
                            (y * torch.tensor(WS[4 * k + step]).reshape(shape)).sum().backward()
                            key = 'bn%%d.%%s.%%d' %% (k, affine, step)
                            out(key + '.y', y); out(key + '.dx', x.grad)
                            if affine:
                                out(key + '.dw', m.weight.grad); out(key + '.db', m.bias.grad)
                                out(key + '.rm', m.running_mean); out(key + '.rv', m.running_var)
                                m.weight.grad = None; m.bias.grad = None
                """, data, TorchPeer.list(gamma), TorchPeer.list(beta));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (int k = 0; k < 2; k++)
            for (boolean affine : new boolean[]{true, false})
                try (Scope s = Scope.open(); BatchNorm1d m = new BatchNorm1d(c, 0.2, 1e-3, affine, affine)) {
                    if (affine) {
                        m.gamma().value().copyFrom(Tensor.of(gamma, c));
                        m.namedParameters().get("bias").value().copyFrom(Tensor.of(beta, c));
                    } else {
                        assertTrue(m.stateDict().isEmpty(), "no parameters or buffers without affine and running statistics: " + m.stateDict().keySet());
                    }
                    double[] rm = affine ? new double[c] : null, rv = affine ? new double[c] : null, drm = new double[c], drv = new double[c];
                    if (affine) java.util.Arrays.fill(rv, 1);
                    for (int step = 0; step < 4; step++) {
                        if (step == 3) m.eval();
                        Var x = Var.param(Tensor.of(xs[4 * k + step], shapes[k]));
                        Var y = m.forward(x);
                        y.mul(Var.of(Tensor.of(ws[4 * k + step], shapes[k]))).sum().backward();
                        String key = "bn" + k + "." + (affine ? "True" : "False") + "." + step;
                        // without running statistics eval mode normalizes by the batch's, as torch does
                        Map<String, double[]> bound = bounds(xs[4 * k + step], ws[4 * k + step], shapes[k], affine ? gamma : null, affine ? beta : null,
                                rm, rv, drm, drv, 0.2, 1e-3, step < 3 || !affine);
                        within(key + ".y", torch.get(key + ".y"), y.value().toFloatArray(), bound.get("y"));
                        within(key + ".dx", torch.get(key + ".dx"), x.grad().toFloatArray(), bound.get("dx"));
                        if (affine) {
                            within(key + ".dw", torch.get(key + ".dw"), m.gamma().grad().toFloatArray(), bound.get("dw"));
                            within(key + ".db", torch.get(key + ".db"), m.namedParameters().get("bias").grad().toFloatArray(), bound.get("db"));
                            within(key + ".rm", torch.get(key + ".rm"), m.stateDict().get("running_mean").toFloatArray(), bound.get("rm"));
                            within(key + ".rv", torch.get(key + ".rv"), m.stateDict().get("running_var").toFloatArray(), bound.get("rv"));
                            m.gamma().zeroGrad();
                            m.namedParameters().get("bias").zeroGrad();
                        }
                    }
                }
    }

    /**
     * A model with a BatchNorm1d saved by Checkpoint after training steps: its parameters and running statistics under
     * torch's names ("1.weight", "1.bias", "1.running_mean", "1.running_var"), restored exactly into a fresh model (the same
     * eval output, bit for bit), and loaded by torch from the file into torch.nn.BatchNorm1d with the same eval output.
     */
    @Test
    void checkpointRoundTripAndTorchReadsIt(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("bn1d.safetensors");
        float[] x = new Rng(9).normal(0, 1, 5, 4).toFloatArray();
        float[] ours;
        Map<String, float[]> state = new java.util.TreeMap<>();
        try (Scope s = Scope.open(); Sequential m = new Sequential(new Linear(4, 3, true, SparseConfig.Method.DENSE.config(), new Rng(1)),
                new BatchNorm1d(3, 0.3, 1e-5), new GELU())) {
            for (int step = 0; step < 3; step++) {
                Var y = m.forward(Var.of(new Rng(20 + step).normal(1, 2, 8, 4)));
                y.sum().backward();
                for (Var p : m.parameters()) p.zeroGrad();
            }
            for (String k : new String[]{"1.weight", "1.bias", "1.running_mean", "1.running_var"})
                assertTrue(m.stateDict().containsKey(k), k + " in " + m.stateDict().keySet());
            assertEquals(6, m.stateDict().size(), m.stateDict().keySet().toString());
            m.stateDict().forEach((k, v) -> state.put(k, v.toFloatArray()));
            assertNotEquals(0f, state.get("1.running_mean")[0], "the running mean moved");
            Checkpoint.of(m).save(file, 3);
            m.eval();
            ours = m.forward(Var.of(Tensor.of(x, 5, 4))).value().toFloatArray();
        }
        try (Scope s = Scope.open(); Sequential fresh = new Sequential(new Linear(4, 3, true, SparseConfig.Method.DENSE.config(), new Rng(2)),
                new BatchNorm1d(3, 0.3, 1e-5), new GELU())) {
            assertEquals(3, Checkpoint.of(fresh).load(file).step());
            fresh.stateDict().forEach((k, v) -> assertArrayEquals(state.get(k), v.toFloatArray(), k));
            fresh.eval();
            assertArrayEquals(ours, fresh.forward(Var.of(Tensor.of(x, 5, 4))).value().toFloatArray());
        }
        // torch reads the file (safetensors: an 8-byte header length, a JSON header, raw little-endian data)
        String script = String.format(Locale.ROOT, """
                import json, struct, torch
                raw = open(%s, 'rb').read()
                n = struct.unpack('<Q', raw[:8])[0]
                head = json.loads(raw[8:8 + n])
                def get(key):
                    e = head['model.' + key]
                    assert e['dtype'] == 'F32', e
                    a, b = e['data_offsets']
                    return torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=torch.float32).reshape(e['shape'])
                lin = torch.nn.Linear(4, 3)
                bn = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=0.3)
                lin.load_state_dict({'weight': get('0.weight'), 'bias': get('0.bias')})
                # strict: torch fills in the num_batches_tracked this does not keep, as for its own pre-1.0 checkpoints
                bn.load_state_dict({k: get('1.' + k) for k in ('weight', 'bias', 'running_mean', 'running_var')})
                m = torch.nn.Sequential(lin, bn, torch.nn.GELU()).eval()
                y = m(torch.tensor(%s, dtype=torch.float32).reshape(5, 4))
                print('y', *[repr(float(v)) for v in y.detach().flatten().tolist()])
                """, "'" + file.toAbsolutePath() + "'", toList(x));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        close("torch's eval output from our checkpoint", torch.get("y"), ours);
    }

    private static String toList(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return TorchPeer.list(d);
    }
}
