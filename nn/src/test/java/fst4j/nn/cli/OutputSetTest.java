package fst4j.nn.cli;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class OutputSetTest {
    private static List<String> names(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            return files.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    /** A set replaces the previous files and leaves no temporary or backup file behind; a PNG is a PNG. */
    @Test
    void writesEveryFileOfTheSet(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("t.md"), "old table");
        new OutputSet().png(dir.resolve("t.png"), new BufferedImage(3, 2, BufferedImage.TYPE_INT_RGB)).text(dir.resolve("t.csv"), "new csv")
                .text(dir.resolve("t.md"), "new table").write();
        assertEquals(List.of("t.csv", "t.md", "t.png"), names(dir));
        assertEquals("new table", Files.readString(dir.resolve("t.md")));
        assertEquals("new csv", Files.readString(dir.resolve("t.csv")));
        assertEquals(3, javax.imageio.ImageIO.read(dir.resolve("t.png").toFile()).getWidth());
        assertThrows(IllegalArgumentException.class, () -> new OutputSet().text(dir.resolve("a"), "").text(dir.resolve("./a"), ""));
    }

    /** A target in the way is refused by name before any file of the set is touched. */
    @Test
    void aDirectoryInTheWayIsRefusedBeforeAnyFileIsReplaced(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("t.md"), "old table");
        Files.createDirectories(dir.resolve("t.csv/x"));
        var e = assertThrows(FileSystemException.class, () -> new OutputSet().text(dir.resolve("t.csv"), "new csv").text(dir.resolve("t.md"), "new")
                .write());
        assertEquals(dir.resolve("t.csv") + ": is a directory, in the way of the output file", e.getMessage());
        assertEquals("old table", Files.readString(dir.resolve("t.md")));
        assertEquals(List.of("t.csv", "t.md"), names(dir));
        Files.delete(dir.resolve("t.csv/x"));   // an empty one too: a move would have replaced it without a word
        assertThrows(FileSystemException.class, () -> OutputSet.checkWritable(dir.resolve("t.csv")));
    }

    /**
     * A move that fails part-way (the table's target a non-empty directory that came after the check) puts back the
     * files already replaced and removes the new ones: the previous set stays as it was.
     */
    @Test
    void aFailedMovePutsThePreviousSetBack(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("t.csv"), "old csv");
        Files.createDirectories(dir.resolve("t.md/x"));
        OutputSet set = new OutputSet().text(dir.resolve("t.png"), "new chart").text(dir.resolve("t.csv"), "new csv").text(dir.resolve("t.md"), "new");
        assertThrows(IOException.class, set::writeUnchecked);
        assertEquals("old csv", Files.readString(dir.resolve("t.csv")));
        assertEquals(List.of("t.csv", "t.md"), names(dir), "the new chart removed, no temporary or backup file left");
        assertEquals(List.of("x"), names(dir.resolve("t.md")));
    }

    /**
     * A target that is a symbolic link (table5.md linked into a paper's folder) keeps its link: the file it points to
     * is replaced, its temporary and backup files made beside that file, none left in either folder. The move replaced
     * the link itself with a regular file, the user's link lost and the linked file left as it was.
     */
    @Test
    void aLinkedTargetIsWrittenThroughItsLink(@TempDir Path dir) throws Exception {
        Path out = Files.createDirectories(dir.resolve("out")), paper = Files.createDirectories(dir.resolve("paper"));
        Files.writeString(paper.resolve("table.md"), "old table");
        Files.createSymbolicLink(out.resolve("t.md"), paper.resolve("table.md"));
        new OutputSet().text(out.resolve("t.csv"), "new csv").text(out.resolve("t.md"), "new table").write();
        assertTrue(Files.isSymbolicLink(out.resolve("t.md")), "the link kept");
        assertEquals(paper.resolve("table.md"), Files.readSymbolicLink(out.resolve("t.md")));
        assertEquals("new table", Files.readString(paper.resolve("table.md")));
        assertEquals(List.of("t.csv", "t.md"), names(out));
        assertEquals(List.of("table.md"), names(paper));
    }

    /**
     * A put-back that fails too (the backup's move refused) keeps the backup and says, in the one line, which target now
     * holds the new file and where the previous one is; the message named only the first failure, the earlier CSV left
     * under a hidden name nobody was told of.
     */
    @Test
    void aFailedPutBackNamesTheKeptBackup(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("t.csv"), "old csv");
        Files.createDirectories(dir.resolve("t.md/x"));
        OutputSet set = new OutputSet().text(dir.resolve("t.csv"), "new csv").text(dir.resolve("t.md"), "new");
        set.mover = (from, to) -> {
            if (from.getFileName().toString().endsWith(".bak")) throw new FileSystemException(from.toString(), to.toString(), "refused");
            OutputSet.move(from, to);
        };
        var e = assertThrows(IOException.class, set::writeUnchecked);
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        Path bak;
        try (var files = Files.list(dir)) {
            bak = files.filter(p -> p.getFileName().toString().endsWith(".bak")).findFirst().orElseThrow(() -> new AssertionError("no backup kept"));
        }
        assertEquals("old csv", Files.readString(bak));
        assertTrue(e.getMessage().contains(dir.resolve("t.md") + ": Is a directory; and not put back: "), e.getMessage());
        assertTrue(e.getMessage().contains(dir.resolve("t.csv") + " holds the new file, the previous one is kept as " + bak), e.getMessage());
    }
}
