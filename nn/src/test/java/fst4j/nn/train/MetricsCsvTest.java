package fst4j.nn.train;

import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * metrics.csv has one schema per file: a run resumed into a folder written with the other --clip-grad-norm setting
 * conforms the file's rows to one header (the grad_norm column added, empty where a run did not clip) instead of
 * appending rows of another width; the charts still read every row; a file of other columns is refused.
 */
class MetricsCsvTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    static final String PLAIN = "method,epoch,step,loss,train_acc,lr,step_ms", CLIPPED = PLAIN + ",grad_norm";

    /** Two epochs of 4 steps of the mlp on data, a checkpoint at step 6, into out; extra flags appended. */
    static void train(Path data, Path out, String... extra) {
        List<String> args = new ArrayList<>(List.of("--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16", "--epochs", "2",
                "--save-every", "3", "--threads", "1", "--no-progress", "--out", out.toString()));
        args.addAll(List.of(extra));
        Outcome r = MainTest.main(TrainData::load, args.toArray(String[]::new));
        assertEquals(0, r.rc(), r.err());
    }

    static Outcome resume(Path ckpt, Path out, String... extra) {
        List<String> args = new ArrayList<>(List.of("--resume", ckpt.toString(), "--threads", "1", "--no-progress", "--out", out.toString()));
        args.addAll(List.of(extra));
        return MainTest.main(TrainData::load, args.toArray(String[]::new));
    }

    /** The rows (header first), each checked to have exactly as many cells as the header. */
    static List<String[]> cells(Path csv) throws IOException {
        List<String> lines = Files.readAllLines(csv);
        int width = lines.get(0).split(",", -1).length;
        List<String[]> out = new ArrayList<>();
        for (String l : lines) {
            String[] f = l.split(",", -1);
            assertEquals(width, f.length, "a row of another width than the header '" + lines.get(0) + "': " + l);
            out.add(f);
        }
        return out;
    }

    /** A row's cells but the timing column, for comparing runs. */
    static String noTime(String[] f) {
        List<String> k = new ArrayList<>(List.of(f));
        k.remove(6);   // step_ms
        return String.join(",", k);
    }

    @Test
    void aResumeWithTheOtherClipSettingConformsTheFileToOneHeader(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), plain = tmp.resolve("plain"), clipped = tmp.resolve("clipped");
        train(data, plain);
        train(data, clipped, "--clip-grad-norm", "0.5");
        Path plainCkpt = tmp.resolve("plain.safetensors"), clippedCkpt = tmp.resolve("clipped.safetensors");
        Files.copy(plain.resolve("dense/checkpoint.safetensors"), plainCkpt);   // both at step 6
        Files.copy(clipped.resolve("dense/checkpoint.safetensors"), clippedCkpt);
        List<String[]> plainRows = cells(plain.resolve("metrics.csv")), clippedRows = cells(clipped.resolve("metrics.csv"));
        assertEquals(PLAIN, String.join(",", plainRows.get(0)));
        assertEquals(CLIPPED, String.join(",", clippedRows.get(0)));
        assertEquals(9, plainRows.size());

        // the clipping run's checkpoint resumed into the plain run's folder: the column is added, empty in the plain rows
        Outcome r = resume(clippedCkpt, plain);
        assertEquals(0, r.rc(), r.err());
        List<String[]> rows = cells(plain.resolve("metrics.csv"));
        assertEquals(CLIPPED, String.join(",", rows.get(0)));
        assertEquals(9, rows.size());
        for (int i = 1; i <= 6; i++) {
            assertEquals("", rows.get(i)[7], "a row of the run without clipping: no norm");
            assertEquals(noTime(plainRows.get(i)) + ",", noTime(rows.get(i)), "row " + i + " kept, its norm cell empty");
        }
        for (int i = 7; i <= 8; i++) {
            assertTrue(Double.parseDouble(rows.get(i)[7]) > 0, String.join(",", rows.get(i)));
            assertEquals(noTime(clippedRows.get(i)), noTime(rows.get(i)), "step " + i + " as the clipping run trained it, norm included");
        }

        // the plain run's checkpoint resumed into the clipping run's folder: the header stays, its new rows leave the norm empty
        Outcome back = resume(plainCkpt, clipped);
        assertEquals(0, back.rc(), back.err());
        rows = cells(clipped.resolve("metrics.csv"));
        assertEquals(CLIPPED, String.join(",", rows.get(0)));
        assertEquals(9, rows.size());
        for (int i = 1; i <= 6; i++) assertEquals(noTime(clippedRows.get(i)), noTime(rows.get(i)), "row " + i + " kept");
        for (int i = 7; i <= 8; i++) {
            assertEquals("", rows.get(i)[7], "a step without clipping: no norm");
            assertEquals(noTime(plainRows.get(i)) + ",", noTime(rows.get(i)), "step " + i + " as the plain run trained it");
        }

        // every reader of the file: the charts' curves take all eight steps of each folder
        for (Path dir : List.of(plain, clipped)) {
            Map<String, List<double[]>> loss = new LinkedHashMap<>(), acc = new LinkedHashMap<>(), test = new LinkedHashMap<>();
            Main.Run.readCurves(dir, loss, acc, test);
            assertEquals(8, loss.get("dense").size(), dir.toString());
            assertEquals(8, acc.get("dense").size(), dir.toString());
            assertTrue(Files.size(dir.resolve("loss.png")) > 0);
        }
    }

    /**
     * The file as it is resumed into: a file of one schema stays byte for byte where nothing needs to change; one of two
     * schemas (what appending across the setting wrote before) gets the column for every row; an empty file (killed before
     * its first flush) gets this run's header; a file of other columns is refused before any training, left as it was.
     */
    @Test
    void theFilesOwnSchemaDecides(@TempDir Path tmp) throws Exception {
        Path csv = tmp.resolve("metrics.csv");
        String plain = PLAIN + "\ndense,1,1,2.3,0.1,0.05,3.0\ndense,1,2,2.2,0.2,0.05,3.1\n";
        Files.writeString(csv, plain);
        assertFalse(Main.Run.conformMetrics(csv, false, false).gradNorm());
        assertEquals(plain, Files.readString(csv), "no clipping, no column: unchanged");
        assertTrue(Main.Run.conformMetrics(csv, true, false).gradNorm());
        assertEquals(CLIPPED + "\ndense,1,1,2.3,0.1,0.05,3.0,\ndense,1,2,2.2,0.2,0.05,3.1,\n", Files.readString(csv), "the column added, empty");
        String clipped = CLIPPED + "\ndense,1,1,2.3,0.1,0.05,3.0,1.5\n";
        Files.writeString(csv, clipped);
        assertTrue(Main.Run.conformMetrics(csv, false, false).gradNorm());
        assertEquals(clipped, Files.readString(csv), "the column kept for a run without clipping; nothing rewritten");
        Files.writeString(csv, PLAIN + "\ndense,1,1,2.3,0.1,0.05,3.0\ndense,1,2,2.2,0.2,0.05,3.1,1.25\n");
        assertTrue(Main.Run.conformMetrics(csv, false, false).gradNorm(), "a file of two schemas");
        assertEquals(CLIPPED + "\ndense,1,1,2.3,0.1,0.05,3.0,\ndense,1,2,2.2,0.2,0.05,3.1,1.25\n", Files.readString(csv));
        Files.writeString(csv, "");
        assertTrue(Main.Run.conformMetrics(csv, true, false).gradNorm());
        assertEquals("", Files.readString(csv), "an empty file: the header comes with the run's rows");

        // through the CLI
        Path data = MainTest.idxData(tmp, 64, 16), run = tmp.resolve("run");
        train(data, run, "--clip-grad-norm", "0.5");
        Path ckpt = tmp.resolve("ckpt.safetensors");
        Files.copy(run.resolve("dense/checkpoint.safetensors"), ckpt);
        Files.writeString(run.resolve("metrics.csv"), "");
        Files.writeString(run.resolve("eval.csv"), "");
        Outcome r = resume(ckpt, run);
        assertEquals(0, r.rc(), r.err());
        List<String[]> rows = cells(run.resolve("metrics.csv"));
        assertEquals(CLIPPED, String.join(",", rows.get(0)));
        assertEquals(3, rows.size(), "the header and steps 7 and 8");
        List<String[]> evals = cells(run.resolve("eval.csv"));
        assertEquals("method,epoch,step,test_acc,test_loss", String.join(",", evals.get(0)));
        assertEquals(2, evals.size(), "the header and epoch 2");
        byte[] foreign = "step,loss\n1,2.3\n".getBytes(StandardCharsets.ISO_8859_1);
        Files.write(run.resolve("metrics.csv"), foreign);
        Outcome refused = resume(ckpt, run);
        assertEquals(2, refused.rc(), refused.err());
        assertTrue(refused.err().contains("metrics.csv begins 'step,loss', not fst4j train's header (" + PLAIN + ", with ,grad_norm where the run clips and ,flip_rate where it measures the flip rate);"
                + " resume into another --out"), refused.err());
        assertFalse(refused.out().contains("resumed from"), "refused before training: " + refused.out());
        assertArrayEquals(foreign, Files.readAllBytes(run.resolve("metrics.csv")));
    }

    /**
     * A row cut short by a killed run (no line end) is never taken for a whole one: conformMetrics refuses it, naming the
     * file and the line (padding a cut row that happens to end after seven cells would have made "3." a step time and
     * added an empty norm); dropRows, which a resume runs first, drops it with a note naming the line; a row of neither
     * width (a cut row an older resume gave a line end) is refused with its line.
     */
    @Test
    void aRowCutShortByAKilledRunIsDroppedOrRefusedNamingTheLine(@TempDir Path tmp) throws Exception {
        Path csv = tmp.resolve("metrics.csv");
        String whole = CLIPPED + "\ndense,1,1,2.3,0.1,0.05,3.0,1.5\n";
        String cutAtSeven = whole + "dense,1,2,2.2,0.2,0.05,3.";   // the eighth cell and the line end never written
        Files.writeString(csv, cutAtSeven);
        IOException e = assertThrows(IOException.class, () -> Main.Run.conformMetrics(csv, false, false).gradNorm());
        assertEquals(csv + " line 3 'dense,1,2,2.2,0.2,0.05,3.' has no line end: a row cut short by a killed run", e.getMessage());
        assertEquals(cutAtSeven, Files.readString(csv), "refused: left as it was");
        Files.writeString(csv, whole + "dense,1,2,2.2\ndense,1,3,2.1,0.3,0.05,3.0,1.5\n");
        e = assertThrows(IOException.class, () -> Main.Run.conformMetrics(csv, true, false).gradNorm());
        assertTrue(e.getMessage().startsWith(csv + " line 3 'dense,1,2,2.2' has 4 cells, not the header's 7 (8 with grad_norm)"), e.getMessage());

        // dropRows drops the cut row whatever its method and step, and says so
        Files.writeString(csv, cutAtSeven);
        assertEquals("dropped line 3 of " + csv + ", 'dense,1,2,2.2,0.2,0.05,3.': it has no line end (a row cut short by a killed run)",
                Main.Run.dropRows(csv, "fst3", f -> true));
        assertEquals(whole, Files.readString(csv));
        Main.Run.dropRows(csv, "fst3", f -> true);
        assertEquals(whole, Files.readString(csv));

        // through the CLI: a resume into a folder whose last row was cut drops it, names it, and leaves one schema
        Path data = MainTest.idxData(tmp, 64, 16), run = tmp.resolve("run");
        train(data, run, "--clip-grad-norm", "0.5");
        Path ckpt = tmp.resolve("ckpt.safetensors");
        Files.copy(run.resolve("dense/checkpoint.safetensors"), ckpt);
        Path m = run.resolve("metrics.csv");
        Files.writeString(m, Files.readString(m) + "fst3,1,9,2.1,0.3,0.05,3.1", java.nio.file.StandardOpenOption.TRUNCATE_EXISTING);
        Outcome r = resume(ckpt, run);
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.err().contains("fst4j train: dropped line 10 of " + m + ", 'fst3,1,9,2.1,0.3,0.05,3.1': it has no line end"), r.err());
        List<String[]> rows = cells(m);
        assertEquals(9, rows.size(), "the header and dense's 8 steps, the cut row gone");
        for (String[] f : rows) assertNotEquals("fst3", f[0]);
    }
}
