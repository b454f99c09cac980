package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.Outcome;
import fst4j.nn.io.SafeTensors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** {@code fst4j train --optimizer sgd|adamw} and AdamW's flags: what they set, what they refuse, and a resumed AdamW run. */
class OptimizerFlagsTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.restored();

    private static TrainConfig config(String... args) throws UsageException {
        return Main.apply(Main.parse(args), TrainConfig.defaults(Method.DENSE));
    }

    @Test
    void withoutTheFlagTheRunIsTheSgdRunItWas() throws Exception {
        TrainConfig c = config();
        assertEquals(TrainConfig.defaults(Method.DENSE), c);
        assertEquals(TrainConfig.OptimizerKind.SGD, c.optimizer());
        assertEquals(0.1, c.lr());
        assertEquals(5e-4, c.weightDecay());
        assertEquals(config("--optimizer", "sgd"), c);
        Map<String, String> meta = c.toMetadata();
        assertEquals("sgd", meta.get("optimizer"));
        assertFalse(meta.containsKey("beta1") || meta.containsKey("wd_on_norm_and_bias"), meta.toString());
        // a checkpoint written before the flag existed (no 'optimizer' key) is an SGD run
        Map<String, String> old = new java.util.LinkedHashMap<>(meta);
        old.remove("optimizer");
        assertEquals(c, TrainConfig.fromMetadata(old));
    }

    @Test
    void adamwTakesTorchsDefaultsAndItsOwnFlags() throws Exception {
        TrainConfig a = config("--optimizer", "adamw");
        assertEquals(TrainConfig.OptimizerKind.ADAMW, a.optimizer());
        assertEquals(1e-3, a.lr());
        assertEquals(1e-2, a.weightDecay());
        assertEquals(TrainConfig.AdamWSettings.DEFAULTS, a.adamW());
        assertTrue(a.wdOnNormAndBias());
        TrainConfig b = config("--optimizer", "ADAMW", "--lr", "0.002", "--wd", "0.05", "--betas", "0.8,0.99", "--eps", "1e-6", "--amsgrad",
                "--no-wd-norm-bias");
        assertEquals(0.002, b.lr());
        assertEquals(0.05, b.weightDecay());
        assertEquals(new TrainConfig.AdamWSettings(0.8, 0.99, 1e-6, true), b.adamW());
        assertFalse(b.wdOnNormAndBias());
        assertEquals(b, TrainConfig.fromMetadata(b.toMetadata()), "the checkpoint's metadata gives the config back");
        assertFalse(config("--no-wd-norm-bias").wdOnNormAndBias(), "SGD takes the groups too");
    }

    @Test
    void flagsOfTheOtherOptimizerOrBadValuesAreUsageErrors() {
        String[][] bad = {{"--optimizer", "rmsprop"}, {"--optimizer", "adamw", "--momentum", "0.9"}, {"--optimizer", "adamw", "--nesterov"},
                {"--betas", "0.9,0.999"}, {"--optimizer", "sgd", "--amsgrad"}, {"--eps", "1e-8"}, {"--optimizer", "adamw", "--betas", "1,0.9"},
                {"--optimizer", "adamw", "--betas", "0.9"}, {"--optimizer", "adamw", "--betas", "0.9,x"}, {"--optimizer", "adamw", "--eps", "-1"}};
        String[] want = {"unknown optimizer 'rmsprop' (sgd, adamw)", "--momentum is SGD's", "--nesterov is SGD's", "AdamW's", "--amsgrad is AdamW's",
                "AdamW's", "--betas needs two numbers in [0, 1)", "--betas needs two numbers", "--betas needs two numbers", "--eps needs a non-negative number"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = bad[i];
            UsageException e = assertThrows(UsageException.class, () -> config(args), String.join(" ", args));
            assertTrue(e.getMessage().contains(want[i]), String.join(" ", args) + ": " + e.getMessage());
        }
    }

    /** An AdamW run through the CLI, checkpointed half way and resumed in another folder, ends bit-identical. */
    @Test
    void anAdamwRunResumesBitIdenticallyThroughTheCli(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 160, 32), out = tmp.resolve("run"), out2 = tmp.resolve("resumed");
        Outcome r = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "fst3_ir", "--batch", "16",
                "--epochs", "2", "--optimizer", "adamw", "--amsgrad", "--no-wd-norm-bias", "--save-every", "13", "--threads", "1", "--no-progress",
                "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("adamw lr 0.001 wd 0.01 (not on biases and norms)"), r.out());
        // the flags the checkpoint was written with may be given again; others may not
        Outcome r2 = MainTest.main(TrainData::load, "--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString(), "--optimizer", "adamw",
                "--out", out2.toString(), "--threads", "1", "--no-progress");
        assertEquals(0, r2.rc(), r2.err());
        try (SafeTensors.Contents a = SafeTensors.read(out.resolve("fst3_ir/final.safetensors"));
             SafeTensors.Contents b = SafeTensors.read(out2.resolve("fst3_ir/final.safetensors"))) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            assertTrue(a.tensors().containsKey("optim.max_exp_avg_sq.0"), a.tensors().keySet().toString());
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
            assertArrayEquals(a.int64("optim.step"), b.int64("optim.step"));
        }
        for (List<String> flags : List.of(List.of("--optimizer", "sgd"), List.of("--betas", "0.8,0.9"))) {
            List<String> args = new java.util.ArrayList<>(List.of("--resume", out.resolve("fst3_ir/checkpoint.safetensors").toString()));
            args.addAll(flags);
            Outcome refused = MainTest.main(MainTest.NO_DATA, args.toArray(String[]::new));
            assertEquals(2, refused.rc(), flags + ": " + refused.err());
        }
    }
}
