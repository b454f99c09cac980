package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.LrSchedule;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The trainer's learning-rate schedules ({@link TrainConfig#schedule}, {@code train --schedule}): each step uses the
 * schedule's value (LrScheduleTorchTest compares those with torch), the per-epoch ones count optimizer steps per epoch
 * (with accumulation too), the setting is in a checkpoint's metadata, another one is refused on resume, and a resumed
 * run continues the schedule and the weights exactly; bad flags are usage errors naming the problem.
 */
class ScheduleTrainerTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    private static TrainConfig config(String... args) throws UsageException {
        return Main.apply(Main.parse(args), TrainConfig.defaults(Method.DENSE));
    }

    /** Each step's lr is the schedule's at that step; per-epoch schedules step at the epochs (4 steps each here, 2 with accumulate 2). */
    @Test
    void eachStepUsesTheSchedulesValue() {
        TrainData data = CheckpointTest.tiny();   // 64 images, batch 16: 4 steps an epoch
        TrainConfig base = CheckpointTest.cfg(Method.DENSE, "mlp");
        ScheduleSpec[] specs = {ScheduleSpec.multiStep(new int[]{1, 2}, 0.5), ScheduleSpec.step(2, 0.3), ScheduleSpec.exponential(0.9),
                ScheduleSpec.oneCycle(0.3, 25, 1e4), ScheduleSpec.linear()};
        for (int acc : new int[]{1, 2}) {
            for (ScheduleSpec spec : specs) {
                TrainConfig cfg = base.withSchedule(spec).withAccumulate(acc);
                int spe = 4 / acc;
                LrSchedule want = switch (spec.kind()) {
                    case MULTISTEP -> LrSchedule.multiStepLR(cfg.lr(), new int[]{1, 2}, 0.5, spe);
                    case STEP -> LrSchedule.stepLR(cfg.lr(), 2, 0.3, spe);
                    case EXP -> LrSchedule.exponentialLR(cfg.lr(), 0.9, spe);
                    case ONECYCLE -> LrSchedule.oneCycle(cfg.lr(), 3L * spe, 0.3, 25, 1e4);
                    default -> LrSchedule.linear(cfg.lr(), cfg.warmupFor(3L * spe), 3L * spe, 0);
                };
                try (Trainer t = new Trainer(cfg, data)) {
                    assertEquals(spe, t.stepsPerEpoch());
                    assertEquals(3L * spe, t.totalSteps());
                    int i = 0;
                    while (!t.finished()) {
                        while (t.epochHasNext()) assertEquals(want.lr(i), t.trainStep().lr(), 0.0, spec + " acc " + acc + " step " + i++);
                        t.endEpoch();
                    }
                    assertEquals(3 * spe, i);
                }
            }
        }
        // and the per-epoch ones do decay: the multistep run's last lr is a quarter of its first
        LrSchedule ms = LrSchedule.multiStepLR(0.05, new int[]{1, 2}, 0.5, 4);
        assertEquals(0.05 / 4, ms.lr(11), 0.0);
    }

    /** A run saved mid-epoch resumes with its schedule exactly (the same lrs, the same weights); another schedule is refused. */
    @Test
    void aScheduledRunResumesExactlyAndAnotherScheduleIsRefused(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        for (ScheduleSpec spec : new ScheduleSpec[]{ScheduleSpec.multiStep(new int[]{1, 2}, 0.5), ScheduleSpec.oneCycle(0.25, 10, 100)}) {
            TrainConfig cfg = CheckpointTest.cfg(Method.FST3_IR).withSchedule(spec);
            Path ckpt = dir.resolve(spec.kind().key() + ".safetensors");
            try (Trainer straight = new Trainer(cfg, data); Trainer first = new Trainer(cfg, data)) {
                double[] lrs = new double[10];
                for (int i = 0; i < 10; i++) {
                    if (!straight.epochHasNext()) { straight.evaluate(); straight.endEpoch(); }
                    lrs[i] = straight.trainStep().lr();
                }
                CheckpointTest.run(first, 5);
                first.save(ckpt);
                assertEquals(spec.kind().key(), Trainer.readMetadata(ckpt).get("schedule"));
                TrainConfig saved = Trainer.readConfig(ckpt);
                assertEquals(cfg, saved);
                try (Trainer resumed = new Trainer(saved, data)) {
                    resumed.load(ckpt);
                    for (int i = 5; i < 10; i++) {
                        if (!resumed.epochHasNext()) { resumed.evaluate(); resumed.endEpoch(); }
                        assertEquals(lrs[i], resumed.trainStep().lr(), 0.0, spec + " step " + i);
                    }
                    CheckpointTest.assertSameState(straight, resumed);
                }
                ScheduleSpec other = spec.kind() == ScheduleSpec.Kind.MULTISTEP ? ScheduleSpec.multiStep(new int[]{1, 3}, 0.5) : ScheduleSpec.COSINE;
                try (Trainer t = new Trainer(cfg.withSchedule(other), data)) {
                    CheckpointTest.Snapshot before = CheckpointTest.Snapshot.of(t);
                    CheckpointException e = assertThrows(CheckpointException.class, () -> t.load(ckpt));
                    assertTrue(e.getMessage().contains("schedule=" + spec.kind().key()), e.getMessage());
                    before.assertUnchanged(t, "a refused checkpoint");
                }
            }
        }
    }

    @Test
    void theFlagsSetTheConfigAndTheMetadataKeepsIt() throws Exception {
        assertEquals(TrainConfig.defaults(Method.DENSE), config("--schedule", "cosine"), "cosine is the default run");
        assertFalse(TrainConfig.defaults(Method.DENSE).toMetadata().containsKey("schedule"), "the default keeps the keys it had");
        assertEquals(ScheduleSpec.multiStep(new int[]{3, 6}, 0.1), config("--schedule", "multistep", "--milestones", "3,6").schedule());
        assertEquals(ScheduleSpec.step(2, 0.5), config("--schedule", "step", "--step-size", "2", "--gamma", "0.5").schedule());
        assertEquals(ScheduleSpec.exponential(0.95), config("--schedule", "exp", "--gamma", "0.95").schedule());
        assertEquals(ScheduleSpec.linear(), config("--schedule", "linear", "--warmup", "3").schedule());
        assertEquals(ScheduleSpec.oneCycle(0.3, 25, 1e4), config("--schedule", "onecycle").schedule());
        assertEquals(ScheduleSpec.oneCycle(0.2, 10, 1e3), config("--schedule=onecycle", "--pct-start", "0.2", "--div-factor", "10",
                "--final-div-factor", "1000").schedule());
        for (TrainConfig c : List.of(config("--schedule", "multistep", "--milestones", "3,6", "--gamma", "0.2"), config("--schedule", "onecycle",
                "--pct-start", "0.2"), config("--schedule", "exp", "--gamma", "0.9"), config("--schedule", "step", "--step-size", "4"),
                config("--schedule", "linear"))) {
            Map<String, String> meta = c.toMetadata();
            assertEquals(c.schedule().kind().key(), meta.get("schedule"));
            assertEquals(c, TrainConfig.fromMetadata(meta), "the metadata gives the config back: " + meta);
            Map<String, String> old = new LinkedHashMap<>(meta);
            old.remove("schedule");
            assertEquals(ScheduleSpec.COSINE, TrainConfig.fromMetadata(old).schedule(), "no key: a checkpoint from before, cosine");
        }
    }

    @Test
    void badScheduleFlagsAreUsageErrors() {
        String[][] bad = {{"--schedule", "poly"}, {"--schedule", "exp"}, {"--schedule", "step"}, {"--schedule", "multistep"},
                {"--gamma", "0.5"}, {"--schedule", "onecycle", "--gamma", "0.5"}, {"--schedule", "step", "--step-size", "2", "--milestones", "3"},
                {"--schedule", "multistep", "--milestones", "3,2"}, {"--schedule", "multistep", "--milestones", "0,2"},
                {"--schedule", "multistep", "--milestones", "3,x"}, {"--schedule", "step", "--step-size", "0"},
                {"--schedule", "exp", "--gamma", "0"}, {"--schedule", "onecycle", "--pct-start", "1"}, {"--schedule", "step", "--step-size", "2", "--warmup", "5"},
                {"--schedule", "onecycle", "--warmup", "5"}, {"--pct-start", "0.3"}, {"--schedule", "cosine", "--schedule", "linear"}};
        String[] want = {"unknown schedule 'poly' (cosine, linear, step, multistep, exp, onecycle)", "--schedule exp needs --gamma X",
                "--schedule step needs --step-size EPOCHS", "--schedule multistep needs --milestones E1,E2,...",
                "--gamma is step's, multistep's, exp's; --schedule cosine does not take it", "--gamma is step's, multistep's, exp's; --schedule onecycle does not take it",
                "--milestones is multistep's; --schedule step does not take it",
                "--milestones: MultiStepLR's milestones must be epochs >= 1 in increasing order, got [3, 2]",
                "--milestones: MultiStepLR's milestones must be epochs >= 1 in increasing order, got [0, 2]",
                "--milestones must be a comma list of epochs (e.g. 30,60), got '3,x'", "--step-size needs a positive integer",
                "--gamma needs a positive number, got '0'", "--schedule onecycle: OneCycleLR's pct_start must be in [0, 1), got 1.0",
                "--warmup is cosine's, linear's; --schedule step does not take it", "--warmup is cosine's, linear's; --schedule onecycle does not take it",
                "--pct-start is onecycle's; --schedule cosine does not take it", "--schedule given twice"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = bad[i];
            UsageException e = assertThrows(UsageException.class, () -> config(args), String.join(" ", args));
            assertTrue(e.getMessage().contains(want[i]), String.join(" ", args) + ": " + e.getMessage());
            Outcome r = MainTest.main(MainTest.NO_DATA, args);
            assertEquals(2, r.rc(), String.join(" ", args));
            assertTrue(r.err().startsWith("fst4j train: ") && r.err().lines().count() == 1, r.err());
        }
        Outcome h = MainTest.main(MainTest.NO_DATA, "--help");
        assertTrue(h.out().contains("--schedule S") && h.out().contains("onecycle  OneCycleLR"), h.out());
    }

    /** Through the CLI: metrics.csv's lr column is the schedule's; --resume refuses another schedule and continues this one exactly. */
    @Test
    void theCliSchedulesAndResumesExactly(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16",
                "--epochs", "3", "--schedule", "multistep", "--milestones", "1,2", "--gamma", "0.5", "--lr", "0.08", "--save-every", "6",
                "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("lr 0.08 (multistep (milestones 1,2, gamma 0.5)) wd"), r.out());
        List<String> rows = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(1 + 12, rows.size());
        for (int i = 1; i <= 12; i++) assertEquals(0.08 * Math.pow(0.5, (i - 1) / 4), Double.parseDouble(rows.get(i).split(",")[5]), 1e-9, rows.get(i));
        List<String> before = MainTest.rowsWithoutTimes(out.resolve("metrics.csv"));
        Path ckpt = out.resolve("dense/checkpoint.safetensors"), fin = tmp.resolve("final.safetensors");
        Files.copy(out.resolve("dense/final.safetensors"), fin);
        for (String[] flags : new String[][]{{"--schedule", "cosine"}, {"--milestones", "1,3"}, {"--gamma", "0.1"}}) {
            Outcome refused = MainTest.main(MainTest.NO_DATA, "--resume", ckpt.toString(), flags[0], flags[1]);
            assertEquals(2, refused.rc(), String.join(" ", flags) + ": " + refused.err());
            assertTrue(refused.err().contains("these flags differ from them: "), refused.err());
        }
        Outcome resumed = MainTest.main(TrainData::load, "--resume", ckpt.toString(), "--schedule", "multistep", "--threads", "1", "--no-progress",
                "--out", out.toString());
        assertEquals(0, resumed.rc(), resumed.err());
        assertEquals(before, MainTest.rowsWithoutTimes(out.resolve("metrics.csv")), "steps 7-12 trained again with the same lrs and losses");
        try (var a = fst4j.nn.io.SafeTensors.read(fin); var b = fst4j.nn.io.SafeTensors.read(out.resolve("dense/final.safetensors"))) {
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
        }
    }
}
