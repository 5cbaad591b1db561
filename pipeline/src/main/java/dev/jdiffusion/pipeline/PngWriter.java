package dev.jdiffusion.pipeline;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageTypeSpecifier;
import javax.imageio.ImageWriter;
import javax.imageio.metadata.IIOMetadata;
import javax.imageio.metadata.IIOMetadataNode;
import javax.imageio.stream.ImageOutputStream;

/**
 * Writes generated images as PNG with their parameters in a {@code parameters} text chunk, as
 * AUTOMATIC1111 writes them (tEXt when the text is Latin-1, iTXt otherwise), so A1111 and other
 * tools read them back. Files appear complete or not at all.
 */
public final class PngWriter {
    private PngWriter() {
    }

    public static void write(GeneratedImage image, Path file) throws IOException {
        System.setProperty("java.awt.headless", "true");
        int w = image.width();
        int h = image.height();
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        byte[] p = image.rgb();
        int plane = w * h;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int i = y * w + x;
                img.setRGB(x, y, (p[i] & 0xFF) << 16 | (p[plane + i] & 0xFF) << 8 | p[2 * plane + i] & 0xFF);
            }
        }
        ImageWriter writer = ImageIO.getImageWritersByFormatName("png").next();
        try {
            IIOMetadata meta = writer.getDefaultImageMetadata(ImageTypeSpecifier.createFromRenderedImage(img),
                    writer.getDefaultWriteParam());
            String format = "javax_imageio_png_1.0";
            IIOMetadataNode root = new IIOMetadataNode(format);
            boolean latin1 = StandardCharsets.ISO_8859_1.newEncoder().canEncode(image.parameters());
            if (image.parameters().isEmpty()) {
                // a picture without parameters (a preview) gets no text chunk
            } else if (latin1) {
                IIOMetadataNode text = new IIOMetadataNode("tEXt");
                IIOMetadataNode entry = new IIOMetadataNode("tEXtEntry");
                entry.setAttribute("keyword", "parameters");
                entry.setAttribute("value", image.parameters());
                text.appendChild(entry);
                root.appendChild(text);
            } else {
                IIOMetadataNode text = new IIOMetadataNode("iTXt");
                IIOMetadataNode entry = new IIOMetadataNode("iTXtEntry");
                entry.setAttribute("keyword", "parameters");
                entry.setAttribute("compressionFlag", "FALSE");
                entry.setAttribute("compressionMethod", "0");
                entry.setAttribute("languageTag", "");
                entry.setAttribute("translatedKeyword", "");
                entry.setAttribute("text", image.parameters());
                text.appendChild(entry);
                root.appendChild(text);
            }
            meta.mergeTree(format, root);
            Path dir = file.toAbsolutePath().getParent();
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, ".png", ".tmp");
            try {
                try (ImageOutputStream out = ImageIO.createImageOutputStream(tmp.toFile())) {
                    writer.setOutput(out);
                    writer.write(null, new IIOImage(img, null, meta), null);
                }
                readableByAll(tmp);
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(tmp);
            }
        } finally {
            writer.dispose();
        }
    }

    /** rw-r--r-- where the file system has POSIX permissions (a temporary file starts as rw-------). */
    public static void readableByAll(Path file) throws IOException {
        try {
            Files.setPosixFilePermissions(file, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
        } catch (UnsupportedOperationException notPosix) {
            // the platform's default permissions apply
        }
    }

    /** The {@code parameters} text of a PNG file, or null when it has none. */
    public static String parameters(Path file) throws IOException {
        try (var in = ImageIO.createImageInputStream(file.toFile())) {
            var readers = ImageIO.getImageReaders(in);
            if (!readers.hasNext()) {
                throw new IOException(file + " is not an image this reader knows");
            }
            var reader = readers.next();
            try {
                reader.setInput(in);
                IIOMetadataNode root = (IIOMetadataNode) reader.getImageMetadata(0).getAsTree("javax_imageio_png_1.0");
                for (String kind : new String[] {"tEXtEntry", "iTXtEntry"}) {
                    var entries = root.getElementsByTagName(kind);
                    for (int i = 0; i < entries.getLength(); i++) {
                        IIOMetadataNode e = (IIOMetadataNode) entries.item(i);
                        if ("parameters".equals(e.getAttribute("keyword"))) {
                            return kind.startsWith("t") ? e.getAttribute("value") : e.getAttribute("text");
                        }
                    }
                }
                return null;
            } finally {
                reader.dispose();
            }
        }
    }
}
