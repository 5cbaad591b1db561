package dev.jdiffusion.pipeline;

import dev.jdiffusion.samplers.SamplerNames;
import dev.jdiffusion.samplers.ScheduleNames;
import dev.jdiffusion.samplers.Schedules;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.Polygon;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.Random;

/**
 * jdiffusion's built-in demo model, for trying the pipeline without Stable Diffusion weights: the
 * exact denoiser of a small data set of procedurally drawn, captioned pictures ("a red circle on a
 * blue background"). The data distribution is the set itself, weighted by how many of the prompt's
 * words each caption contains, so D(x, σ) is the posterior mean over the pictures — sampling with the
 * real samplers, schedules, CFG, seeds and batches ends on (a blend close to) one matching picture.
 * It works on pictures at a quarter of the requested size (its latent space: 280 pictures stay small)
 * and scales the result up; it is not Stable Diffusion, and its images say so in their parameters.
 */
public final class DemoModel {
    /** The model name written into the images' parameters. */
    public static final String NAME = "jdiffusion demo (procedural pictures, not Stable Diffusion)";
    static final String[] COLOURS = {"red", "green", "blue", "yellow", "orange", "purple", "white", "black"};
    static final Color[] RGB = {new Color(220, 40, 40), new Color(40, 170, 60), new Color(40, 80, 220),
        new Color(240, 210, 40), new Color(245, 140, 30), new Color(140, 60, 190), new Color(245, 245, 245),
        new Color(20, 20, 20)};
    static final String[] SHAPES = {"circle", "square", "triangle", "ring", "cross"};
    /** Every colour, shape and (other) background colour, each in two placements. */
    private static final int PICTURES = 2 * 8 * 5 * 7;
    /** The demo works at a quarter of the image size (its "latent" space) and scales up at the end. */
    static final int SCALE = 4;
    /** How much a matching word outweighs a picture's distance (which grows with the pixel count). */
    private static final double MATCH_WEIGHT = 1e6;
    private static final double SIGMA_MIN = 0.002;
    private static final double SIGMA_MAX = 80;

    private DemoModel() {
    }

    /** The captioned pictures at a size: [k][3·h·w] in [−1, 1], with their captions. */
    record DataSet(float[][] pixels, String[] captions) {
    }

    static DataSet dataSet(int width, int height) {
        float[][] px = new float[PICTURES][];
        String[] captions = new String[PICTURES];
        Random r = new Random(2024);
        for (int k = 0; k < PICTURES; k++) {
            int shape = k % SHAPES.length;
            int colour = k / SHAPES.length % COLOURS.length;
            int bg = (colour + 1 + k / (SHAPES.length * COLOURS.length) % (COLOURS.length - 1)) % COLOURS.length;
            BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
            Graphics2D g = img.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(RGB[bg]);
            g.fillRect(0, 0, width, height);
            g.setColor(RGB[colour]);
            int size = (int) (Math.min(width, height) * (0.35 + 0.3 * r.nextDouble()));
            int x = (int) ((width - size) * (0.15 + 0.7 * r.nextDouble()));
            int y = (int) ((height - size) * (0.15 + 0.7 * r.nextDouble()));
            switch (SHAPES[shape]) {
                case "circle" -> g.fillOval(x, y, size, size);
                case "square" -> g.fillRect(x, y, size, size);
                case "triangle" -> g.fillPolygon(new Polygon(new int[] {x, x + size, x + size / 2},
                        new int[] {y + size, y + size, y}, 3));
                case "ring" -> {
                    g.setStroke(new BasicStroke(size / 6f));
                    g.drawOval(x + size / 12, y + size / 12, size - size / 6, size - size / 6);
                }
                default -> {
                    g.fillRect(x + size / 3, y, size / 3, size);
                    g.fillRect(x, y + size / 3, size, size / 3);
                }
            }
            g.dispose();
            float[] p = new float[3 * width * height];
            int plane = width * height;
            for (int yy = 0; yy < height; yy++) {
                for (int xx = 0; xx < width; xx++) {
                    int v = img.getRGB(xx, yy);
                    int i = yy * width + xx;
                    p[i] = ((v >> 16) & 0xFF) / 127.5f - 1;
                    p[plane + i] = ((v >> 8) & 0xFF) / 127.5f - 1;
                    p[2 * plane + i] = (v & 0xFF) / 127.5f - 1;
                }
            }
            px[k] = p;
            captions[k] = "a " + COLOURS[colour] + " " + SHAPES[shape] + " on a " + COLOURS[bg] + " background";
        }
        return new DataSet(px, captions);
    }

    /**
     * Log prior weight of each picture for a prompt: its score (4 for its shape, 3 for its colour
     * named before "on", 2 for its background colour named after "on") times a weight so large that
     * only the best-scoring pictures count: the prompt selects the pictures it describes, and an
     * empty or unrelated prompt leaves all of them.
     */
    static double[] logWeights(DataSet d, String prompt) {
        String p = " " + prompt.toLowerCase(Locale.ROOT).replaceAll("[^a-z ]", " ") + " ";
        int on = p.indexOf(" on ");
        String subject = on < 0 ? p : p.substring(0, on + 1);
        String background = on < 0 ? "" : p.substring(on);
        double[] lw = new double[d.captions().length];
        for (int k = 0; k < lw.length; k++) {
            String[] c = d.captions()[k].split(" ");
            String colour = c[1];
            String shape = c[2];
            String bg = c[5];
            double score = (subject.contains(" " + shape + " ") ? 4 : 0) + (subject.contains(" " + colour + " ") ? 3 : 0)
                    + (background.contains(" " + bg + " ") ? 2 : 0);
            lw[k] = score * MATCH_WEIGHT;
        }
        return lw;
    }

    /** The posterior mean over the pictures at sigma for items [from, to) of x, written to the same items of out. */
    static void denoise(DataSet d, double[] lw, double[] x, int from, int to, double sigma, double[] out) {
        int dim = d.pixels()[0].length;
        double[] logits = new double[lw.length];
        for (int b = from; b < to; b++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int k = 0; k < lw.length; k++) {
                float[] p = d.pixels()[k];
                double dist = 0;
                for (int i = 0; i < dim; i++) {
                    double e = x[b * dim + i] - p[i];
                    dist += e * e;
                }
                logits[k] = lw[k] - dist / (2 * sigma * sigma);
                max = Math.max(max, logits[k]);
            }
            double sum = 0;
            for (int k = 0; k < lw.length; k++) {
                logits[k] = Math.exp(logits[k] - max);
                sum += logits[k];
            }
            for (int k = 0; k < lw.length; k++) {
                double w = logits[k] / sum;
                if (w < 1e-12) {
                    continue;
                }
                float[] p = d.pixels()[k];
                for (int i = 0; i < dim; i++) {
                    out[b * dim + i] += w * p[i];
                }
            }
        }
    }

    /** txt2img (and img2img) with the demo model; the same request fields as {@link StableDiffusion#generate}. */
    public static List<GeneratedImage> generate(GenerationRequest r, StableDiffusion.ProgressListener progress) {
        int lw = r.width() / SCALE;
        int lh = r.height() / SCALE;
        DataSet data = dataSet(lw, lh);
        int per = 3 * lw * lh;
        float[] init = r.isImg2Img() ? shrink(Pixels.toImage(r.initImage(), 1, r.height(), r.width()).toFloatArray(),
                r.width(), r.height()) : null;
        GenerationLoop.Model model = new GenerationLoop.Model() {
            @Override
            public double[] sigmas(SamplerNames.Resolved sampler, String requestedSchedule, int steps) {
                String name = sampler.scheduleFor(requestedSchedule);
                if (name == null) {
                    // a sampler with its own time grid ends at the model's smallest sigma, not at 0
                    return java.util.Arrays.copyOf(schedule("Karras", steps + 1), steps + 1);
                }
                return sampler.discardPenultimateSigma() ? ScheduleNames.withoutPenultimate(schedule(name, steps + 1))
                        : schedule(name, steps);
            }

            private final java.util.Map<String, double[]> weights = new java.util.HashMap<>();

            @Override
            public double[] denoise(double[] blocks, double sigma, List<String> texts) {
                int b = blocks.length / (texts.size() * per);
                double[] out = new double[blocks.length];
                for (int j = 0; j < texts.size(); j++) {
                    DemoModel.denoise(data, weights.computeIfAbsent(texts.get(j), t -> logWeights(data, t)), blocks, j * b, (j + 1) * b,
                            sigma, out);
                }
                return out;
            }

            @Override
            public int previewScale() {
                return SCALE;
            }

            @Override
            public byte[] preview(double[] latent, int item) {
                byte[] out = new byte[per];
                for (int i = 0; i < per; i++) {
                    out[i] = Pixels.toByte(latent[item * per + i]);
                }
                return out;
            }

            @Override
            public byte[] pixels(double[] latent, int item) {
                return enlarge(java.util.Arrays.copyOfRange(latent, item * per, (item + 1) * per), lw, lh);
            }
        };
        if (!LoraTags.parse(r.prompt()).tags().isEmpty()) {
            throw new IllegalArgumentException("the demo model takes no LoRA; pass --model FILE to use <lora:...> tags");
        }
        return GenerationLoop.run(r, r.prompt(), model, per, init, NAME, Map.of(), progress);
    }

    /** The mean of each SCALE×SCALE block of a [3, h, w] image. */
    static float[] shrink(float[] img, int w, int h) {
        int sw = w / SCALE;
        int sh = h / SCALE;
        float[] out = new float[3 * sw * sh];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    out[(c * sh + y / SCALE) * sw + x / SCALE] += img[(c * h + y) * w + x] / (SCALE * SCALE);
                }
            }
        }
        return out;
    }

    /** A [3, h, w] picture in [−1, 1] scaled up SCALE times (bilinear, pixel centres aligned) to 8-bit RGB. */
    static byte[] enlarge(double[] img, int w, int h) {
        int bw = w * SCALE;
        int bh = h * SCALE;
        byte[] out = new byte[3 * bw * bh];
        for (int c = 0; c < 3; c++) {
            for (int y = 0; y < bh; y++) {
                double fy = Math.min(h - 1, Math.max(0, (y + 0.5) / SCALE - 0.5));
                int y0 = (int) fy;
                int y1 = Math.min(h - 1, y0 + 1);
                double ty = fy - y0;
                for (int x = 0; x < bw; x++) {
                    double fx = Math.min(w - 1, Math.max(0, (x + 0.5) / SCALE - 0.5));
                    int x0 = (int) fx;
                    int x1 = Math.min(w - 1, x0 + 1);
                    double tx = fx - x0;
                    double top = img[(c * h + y0) * w + x0] * (1 - tx) + img[(c * h + y0) * w + x1] * tx;
                    double bottom = img[(c * h + y1) * w + x0] * (1 - tx) + img[(c * h + y1) * w + x1] * tx;
                    out[(c * bh + y) * bw + x] = Pixels.toByte(top * (1 - ty) + bottom * ty);
                }
            }
        }
        return out;
    }

    /**
     * The named schedule over the demo's noise range (0.002 to 80); the demo has no timesteps, so the
     * time-uniform schedules ("Uniform", ComfyUI's "normal") are Karras's.
     */
    private static double[] schedule(String name, int n) {
        String key = name.replace(" ", "").replace("_", "").toLowerCase(Locale.ROOT);
        return switch (key) {
            case "exponential" -> Schedules.exponential(n, SIGMA_MIN, SIGMA_MAX);
            case "polyexponential" -> Schedules.polyexponential(n, SIGMA_MIN, SIGMA_MAX, 1);
            case "kloptimal" -> Schedules.klOptimal(n, SIGMA_MIN, SIGMA_MAX);
            case "automatic", "uniform", "normal", "karras" -> Schedules.karras(n, SIGMA_MIN, SIGMA_MAX, 7);
            default -> throw new IllegalArgumentException("the demo model offers the Karras, Exponential, Polyexponential and"
                    + " KL Optimal schedules (the others need a model's own timesteps); known for models: "
                    + String.join(", ", ScheduleNames.names()));
        };
    }
}
