package dev.jdiffusion.core.model;

import dev.jdiffusion.core.tensor.Tensor;
import java.util.function.UnaryOperator;

/**
 * Runs a spatial operation tile by tile and blends the overlaps (the tiled VAE of diffusers and
 * A1111): the input {@code [N, C, H, W]} is cut into tiles of {@code tile} pixels that start every
 * {@code tile − overlap} pixels; each tile's output overlaps its upper and left neighbours over the
 * overlap (scaled to the output) and is blended into them with a linear ramp; then every tile
 * keeps its first {@code (tile − overlap)·scale} rows and columns. Memory follows the tile, not the
 * image.
 */
final class Tiles {
    private Tiles() {
    }

    /**
     * f applied tile-wise; f maps a {@code t×t} tile to {@code t·num/den × t·num/den} (the scale: 2^k
     * up for a decoder, 1/2^k for an encoder).
     */
    static Tensor apply(Tensor in, int tile, int overlap, int num, int den, UnaryOperator<Tensor> f) {
        if (in.rank() != 4 || tile < 1 || overlap < 0 || overlap >= tile) {
            throw new IllegalArgumentException("tiles need a [N, C, H, W] input and 0 <= overlap < tile, got tile " + tile
                    + ", overlap " + overlap);
        }
        int n = in.dim(0);
        int c = in.dim(1);
        int h = in.dim(2);
        int w = in.dim(3);
        if (h <= tile && w <= tile) {
            return f.apply(in);
        }
        int stride = tile - overlap;
        int rows = (h + stride - 1) / stride;
        int cols = (w + stride - 1) / stride;
        float[] src = in.toFloatArray();
        float[][][] out = new float[rows][cols][];
        int[][][] shapes = new int[rows][cols][];
        int outC = -1;
        for (int r = 0; r < rows; r++) {
            for (int q = 0; q < cols; q++) {
                int y0 = r * stride;
                int x0 = q * stride;
                int th = Math.min(tile, h - y0);
                int tw = Math.min(tile, w - x0);
                Tensor t = f.apply(Tensor.of(crop(src, n, c, h, w, y0, x0, th, tw), n, c, th, tw));
                out[r][q] = t.toFloatArray();
                shapes[r][q] = t.shape();
                outC = t.dim(1);
            }
        }
        int extent = overlap * num / den;
        int limit = stride * num / den;
        for (int r = 0; r < rows; r++) {
            for (int q = 0; q < cols; q++) {
                if (r > 0) {
                    blendVertical(out[r - 1][q], shapes[r - 1][q], out[r][q], shapes[r][q], extent);
                }
                if (q > 0) {
                    blendHorizontal(out[r][q - 1], shapes[r][q - 1], out[r][q], shapes[r][q], extent);
                }
            }
        }
        int oh = h * num / den;
        int ow = w * num / den;
        float[] result = new float[n * outC * oh * ow];
        for (int r = 0; r < rows; r++) {
            for (int q = 0; q < cols; q++) {
                int[] s = shapes[r][q];
                int y0 = r * limit;
                int x0 = q * limit;
                int kh = Math.min(Math.min(limit, s[2]), oh - y0);
                int kw = Math.min(Math.min(limit, s[3]), ow - x0);
                for (int b = 0; b < n * outC; b++) {
                    for (int y = 0; y < kh; y++) {
                        System.arraycopy(out[r][q], (b * s[2] + y) * s[3], result, (b * oh + y0 + y) * ow + x0, kw);
                    }
                }
            }
        }
        return Tensor.of(result, n, outC, oh, ow);
    }

    private static float[] crop(float[] src, int n, int c, int h, int w, int y0, int x0, int th, int tw) {
        float[] t = new float[n * c * th * tw];
        for (int b = 0; b < n * c; b++) {
            for (int y = 0; y < th; y++) {
                System.arraycopy(src, (b * h + y0 + y) * w + x0, t, (b * th + y) * tw, tw);
            }
        }
        return t;
    }

    /** The first {@code extent} rows of b fade in over the last rows of a (the tile above). */
    private static void blendVertical(float[] a, int[] sa, float[] b, int[] sb, int extent) {
        int e = Math.min(extent, Math.min(sa[2], sb[2]));
        int w = Math.min(sa[3], sb[3]);
        for (int p = 0; p < sb[0] * sb[1]; p++) {
            for (int y = 0; y < e; y++) {
                float t = (float) y / e;
                int rowA = (p * sa[2] + sa[2] - e + y) * sa[3];
                int rowB = (p * sb[2] + y) * sb[3];
                for (int x = 0; x < w; x++) {
                    b[rowB + x] = a[rowA + x] * (1 - t) + b[rowB + x] * t;
                }
            }
        }
    }

    /** The first {@code extent} columns of b fade in over the last columns of a (the tile on the left). */
    private static void blendHorizontal(float[] a, int[] sa, float[] b, int[] sb, int extent) {
        int e = Math.min(extent, Math.min(sa[3], sb[3]));
        int hgt = Math.min(sa[2], sb[2]);
        for (int p = 0; p < sb[0] * sb[1]; p++) {
            for (int y = 0; y < hgt; y++) {
                int rowA = (p * sa[2] + y) * sa[3];
                int rowB = (p * sb[2] + y) * sb[3];
                for (int x = 0; x < e; x++) {
                    float t = (float) x / e;
                    b[rowB + x] = a[rowA + sa[3] - e + x] * (1 - t) + b[rowB + x] * t;
                }
            }
        }
    }
}
