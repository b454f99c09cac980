package fst4j.nn.cli;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The files one command writes at its end (a table, its CSV, its charts), written as a set: every file in full to a
 * temporary file beside its target first, then each moved over its target (atomically where the file system can), and
 * should one move fail, the targets already replaced are put back as they were. A failure therefore leaves the
 * previous set (an earlier run's) as it was, never a new table beside an old or half-written CSV.
 *
 * <p>{@link #checkWritable} is the check a command makes before its first run: an output that cannot be written (a
 * directory of its name, a read-only file or folder) found after hours of training lost every run.
 */
public final class OutputSet {
    /** Target to content, in the order added; moved in that order, so the file added last (the table) is replaced last. */
    private final Map<Path, byte[]> files = new LinkedHashMap<>();

    /** How a file is moved over another; a test replaces it to make a move fail. */
    interface Mover { void move(Path from, Path to) throws IOException; }

    Mover mover = OutputSet::move;

    public OutputSet text(Path file, String text) { return add(file, text.getBytes(StandardCharsets.UTF_8)); }

    /** img encoded as PNG now, in memory: a failing encoder fails before any file is touched. */
    public OutputSet png(Path file, BufferedImage img) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        if (!ImageIO.write(img, "png", b)) throw new IOException("no PNG writer in this JDK");
        return add(file, b.toByteArray());
    }

    private OutputSet add(Path file, byte[] content) {
        if (files.put(file.toAbsolutePath().normalize(), content) != null) throw new IllegalArgumentException(file + " is in the set twice");
        return this;
    }

    /**
     * Refuses, with the path in the message, an output that cannot take a file: a directory there, or a file or folder
     * not writable. The folders must exist (the commands create --out first).
     */
    public static void checkWritable(Path... files) throws IOException {
        for (Path file : files) {
            Path f = throughLink(file.toAbsolutePath());
            if (Files.isDirectory(f)) throw new FileSystemException(file.toString(), null, "is a directory, in the way of the output file");
            if (Files.exists(f) && !Files.isWritable(f)) throw new AccessDeniedException(file.toString());
            if (!Files.isWritable(f.getParent())) throw new AccessDeniedException(f.getParent().toString());
        }
    }

    /** Writes the set: the targets checked again (hours may have passed since the first check), then written and moved. */
    public void write() throws IOException {
        checkWritable(files.keySet().toArray(Path[]::new));
        writeUnchecked();
    }

    /** {@link #write} without the check, so that a test can make a move fail and see the set put back. */
    void writeUnchecked() throws IOException {
        Map<Path, Path> tmps = new LinkedHashMap<>(), backups = new LinkedHashMap<>();
        List<Path> moved = new ArrayList<>();
        try {
            for (var e : files.entrySet()) {
                Path target = throughLink(e.getKey()), tmp = fst4j.nn.io.IoText.sibling(target, ".tmp");
                if (tmps.containsKey(target)) throw new FileSystemException(e.getKey().toString(), null, "links to another file of the set, " + target);
                tmps.put(target, tmp);
                Files.write(tmp, e.getValue(), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
            }
            // a second name for each previous file (a hard link: no copy, no window without the file), to put it back
            for (Path target : tmps.keySet())
                if (Files.isRegularFile(target)) {
                    Path bak = fst4j.nn.io.IoText.sibling(target, ".bak");
                    backups.put(target, bak);   // before it exists: a copy that fails half way is removed below too
                    try {
                        Files.createLink(bak, target);
                    } catch (UnsupportedOperationException | FileSystemException e) {   // no hard links here: a copy
                        Files.copy(target, bak, StandardCopyOption.COPY_ATTRIBUTES);
                    }
                }
            for (var e : tmps.entrySet()) {
                mover.move(e.getValue(), e.getKey());
                moved.add(e.getKey());
            }
        } catch (IOException | RuntimeException e) {
            List<String> kept = new ArrayList<>();
            for (Path target : moved.reversed()) {   // back to the previous set: each replaced file restored, each new one removed
                Path bak = backups.remove(target);
                try {
                    if (bak != null) mover.move(bak, target);
                    else Files.deleteIfExists(target);
                } catch (IOException | RuntimeException r) {
                    e.addSuppressed(r);
                    // the backup stays (out of backups, so not deleted below); a hidden name nobody was told of was as lost
                    kept.add(bak != null ? target + " holds the new file, the previous one is kept as " + bak : target + " is a new file, not removed");
                }
            }
            if (!kept.isEmpty())
                throw new IOException(Cli.message(e) + "; and not put back: " + String.join("; ", kept), e);
            throw e;
        } finally {
            // a temporary or backup name that cannot be removed is left behind: it must not replace the outcome (a
            // written set, or the failure that says what was kept)
            for (Path p : tmps.values()) removeQuietly(p);
            for (Path p : backups.values()) removeQuietly(p);
        }
    }

    private static void removeQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException | RuntimeException ignored) {
            // see the finally above
        }
    }

    /**
     * The file a target names: a symbolic link's file (a table linked into a paper's folder), so that the link stays
     * and its file is replaced, as a plain write through the link did; a move over the link replaced the link itself.
     * A target that is no link, or a link to nothing, is itself.
     */
    private static Path throughLink(Path target) throws IOException {
        return Files.isSymbolicLink(target) && Files.exists(target) ? target.toRealPath() : target;
    }

    static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
