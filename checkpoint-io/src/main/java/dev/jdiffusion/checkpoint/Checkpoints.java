package dev.jdiffusion.checkpoint;

import dev.jdiffusion.checkpoint.diffusers.DiffusersFolder;
import dev.jdiffusion.checkpoint.safetensors.SafetensorsFile;
import dev.jdiffusion.checkpoint.torch.TorchCheckpoint;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;

/** Opens a checkpoint of any supported format, told apart by content rather than by file name. */
public final class Checkpoints {
    private Checkpoints() {
    }

    /**
     * Opens {@code path}: a torch zip or legacy file (by its first bytes), a safetensors file, or a
     * diffusers model folder (its weights in single-file naming, see {@link DiffusersFolder}).
     */
    public static Checkpoint open(Path path) throws IOException {
        if (!Files.exists(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such checkpoint");
        }
        if (Files.isDirectory(path)) {
            return DiffusersFolder.open(path);
        }
        byte[] head = new byte[9];
        int n;
        try (InputStream in = Files.newInputStream(path)) {
            n = in.readNBytes(head, 0, head.length);
        }
        boolean zip = n >= 4 && head[0] == 'P' && head[1] == 'K' && (head[2] == 3 || head[2] == 5);
        // a safetensors header length is followed by '{'; a header of 128..255 bytes also starts with 0x80
        boolean safetensors = n == 9 && head[8] == '{';
        boolean pickle = n >= 2 && (head[0] & 0xff) == 0x80 && head[1] <= 5 && !safetensors;
        String name = path.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean torchName = name.endsWith(".ckpt") || name.endsWith(".pt") || name.endsWith(".pth")
                || name.endsWith(".bin");
        if (zip || pickle || (torchName && !safetensors)) {
            return TorchCheckpoint.open(path);
        }
        return SafetensorsFile.open(path);
    }
}
