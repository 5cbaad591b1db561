package dev.jdiffusion.core.cpu;

/** Plain float64 implementations of the backend's ops, written for clarity, used as the oracle in tests. */
final class Reference {
    private Reference() {
    }

    /** C[b] = op(A[b]) op(B[b]); a is [batch?, M, K] (or K×M when transA), b is [batch?, K, N] (or N×K). */
    static double[] matmul(float[] a, float[] b, int batchA, int batchB, int m, int n, int k, boolean transA,
                           boolean transB) {
        int batch = Math.max(batchA, batchB);
        double[] c = new double[batch * m * n];
        for (int bi = 0; bi < batch; bi++) {
            int ao = batchA == 1 ? 0 : bi * m * k;
            int bo = batchB == 1 ? 0 : bi * k * n;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int t = 0; t < k; t++) {
                        double x = transA ? a[ao + t * m + i] : a[ao + i * k + t];
                        double y = transB ? b[bo + j * k + t] : b[bo + t * n + j];
                        s += x * y;
                    }
                    c[(bi * m + i) * n + j] = s;
                }
            }
        }
        return c;
    }

    /** Σ|a||b| for each output of {@link #matmul}: the scale of a dot product's rounding error. */
    static double[] matmulAbs(float[] a, float[] b, int batchA, int batchB, int m, int n, int k, boolean transA,
                              boolean transB) {
        float[] aa = abs(a);
        float[] bb = abs(b);
        return matmul(aa, bb, batchA, batchB, m, n, k, transA, transB);
    }

    static float[] abs(float[] x) {
        float[] r = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            r[i] = Math.abs(x[i]);
        }
        return r;
    }

    static double[] conv2d(float[] x, float[] w, float[] bias, int n, int cin, int h, int wd, int cout, int kh, int kw,
                           int stride, int pad, boolean absolute) {
        int ho = (h + 2 * pad - kh) / stride + 1;
        int wo = (wd + 2 * pad - kw) / stride + 1;
        double[] out = new double[n * cout * ho * wo];
        for (int b = 0; b < n; b++) {
            for (int co = 0; co < cout; co++) {
                for (int oy = 0; oy < ho; oy++) {
                    for (int ox = 0; ox < wo; ox++) {
                        double s = bias == null ? 0 : (absolute ? Math.abs(bias[co]) : bias[co]);
                        for (int ci = 0; ci < cin; ci++) {
                            for (int ky = 0; ky < kh; ky++) {
                                for (int kx = 0; kx < kw; kx++) {
                                    int iy = oy * stride + ky - pad;
                                    int ix = ox * stride + kx - pad;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                                        continue;
                                    }
                                    double xv = x[((b * cin + ci) * h + iy) * wd + ix];
                                    double wv = w[((co * cin + ci) * kh + ky) * kw + kx];
                                    s += absolute ? Math.abs(xv * wv) : xv * wv;
                                }
                            }
                        }
                        out[((b * cout + co) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }
        return out;
    }

    static double[] groupNorm(float[] x, int n, int c, int spatial, int groups, float[] gamma, float[] beta, double eps,
                              boolean silu) {
        double[] out = new double[x.length];
        int cpg = c / groups;
        for (int b = 0; b < n; b++) {
            for (int g = 0; g < groups; g++) {
                int start = (b * c + g * cpg) * spatial;
                int len = cpg * spatial;
                double mean = 0;
                for (int i = 0; i < len; i++) {
                    mean += x[start + i];
                }
                mean /= len;
                double var = 0;
                for (int i = 0; i < len; i++) {
                    var += (x[start + i] - mean) * (x[start + i] - mean);
                }
                var /= len;
                for (int i = 0; i < len; i++) {
                    int ch = g * cpg + i / spatial;
                    double y = (x[start + i] - mean) / Math.sqrt(var + eps) * gamma[ch] + beta[ch];
                    out[start + i] = silu ? silu(y) : y;
                }
            }
        }
        return out;
    }

    static double[] layerNorm(float[] x, int d, float[] gamma, float[] beta, double eps) {
        double[] out = new double[x.length];
        for (int r = 0; r < x.length / d; r++) {
            double mean = 0;
            for (int i = 0; i < d; i++) {
                mean += x[r * d + i];
            }
            mean /= d;
            double var = 0;
            for (int i = 0; i < d; i++) {
                var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
            }
            var /= d;
            for (int i = 0; i < d; i++) {
                out[r * d + i] = (x[r * d + i] - mean) / Math.sqrt(var + eps) * gamma[i] + beta[i];
            }
        }
        return out;
    }

    static double[] softmax(float[] x, int d) {
        double[] out = new double[x.length];
        for (int r = 0; r < x.length / d; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < d; i++) {
                max = Math.max(max, x[r * d + i]);
            }
            double s = 0;
            for (int i = 0; i < d; i++) {
                out[r * d + i] = Math.exp(x[r * d + i] - max);
                s += out[r * d + i];
            }
            for (int i = 0; i < d; i++) {
                out[r * d + i] /= s;
            }
        }
        return out;
    }

    static double[] attention(float[] q, float[] k, float[] v, int batch, int heads, int dh, int nq, int nk,
                              boolean causal) {
        int c = heads * dh;
        double[] out = new double[batch * nq * c];
        double scale = 1 / Math.sqrt(dh);
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < nq; i++) {
                    double[] s = new double[nk];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < nk; j++) {
                        if (causal && j > i) {
                            s[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double dot = 0;
                        for (int d = 0; d < dh; d++) {
                            dot += (double) q[(b * nq + i) * c + h * dh + d] * k[(b * nk + j) * c + h * dh + d];
                        }
                        s[j] = dot * scale;
                        max = Math.max(max, s[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < nk; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int d = 0; d < dh; d++) {
                        double o = 0;
                        for (int j = 0; j < nk; j++) {
                            o += s[j] * v[(b * nk + j) * c + h * dh + d];
                        }
                        out[(b * nq + i) * c + h * dh + d] = o / sum;
                    }
                }
            }
        }
        return out;
    }

    static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    static double quickGelu(double x) {
        return x / (1 + Math.exp(-1.702 * x));
    }

    static double gelu(double x) {
        return 0.5 * x * erfc(-x / Math.sqrt(2));
    }

    static double geluTanh(double x) {
        // 0.5·(1 + tanh(u)) = 1 / (1 + exp(-2u)); the second form does not cancel for large negative u
        double u = Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
        return x / (1 + Math.exp(-2 * u));
    }

    /** erfc in double: the continued fraction for large arguments, the series for small ones (relative error < 1e-13). */
    static double erfc(double x) {
        if (x < 0) {
            return 2 - erfc(-x);
        }
        if (x < 2.5) {
            // erf series: 2/sqrt(pi) Σ (-1)^n x^(2n+1) / (n! (2n+1))
            double sum = 0;
            double term = x;
            for (int n = 0; n < 200; n++) {
                double t = term / (2 * n + 1);
                sum += t;
                term *= -x * x / (n + 1);
                if (Math.abs(t) < 1e-18) {
                    break;
                }
            }
            return 1 - 2 / Math.sqrt(Math.PI) * sum;
        }
        // Lentz continued fraction: erfc(x) = exp(-x²)/sqrt(pi) · 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        double f = x;
        for (int n = 200; n >= 1; n--) {
            f = x + (n / 2.0) / f;
        }
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
    }
}
