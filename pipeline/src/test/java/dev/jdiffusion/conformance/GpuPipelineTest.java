package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.core.cpu.CpuBackend;
import dev.jdiffusion.core.tensor.Tensor;
import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.CudaProbe;
import dev.jdiffusion.cuda.EmulatedDevice;
import dev.jdiffusion.cuda.FakeDevice;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * Whole generations on the CUDA kernels, on a GPU where one can be used, else on the adversarial
 * emulated GPU (cuda-backend's {@link EmulatedDevice}: threads and blocks in reverse, memory nothing
 * wrote NaN), against the same generations on the CPU backend: text encoding, the UNet loop with CFG
 * as one batch, ancestral noise, the VAE decode, eager and as CUDA graphs; img2img with a LoRA. The
 * tiny conformance model, in float32 and in autocast.
 */
class GpuPipelineTest {

    private static List<GeneratedImage> run(StableDiffusion sd, GenerationRequest r) {
        return sd.generate(r, StableDiffusion.ProgressListener.NONE);
    }

    /**
     * A CUDA backend in float32 or autocast: on the GPU where one can be used, else on the adversarial
     * emulated one; the test is skipped where neither can run.
     */
    private static CudaBackend gpu(boolean autocast) {
        CudaProbe.Result probe = CudaProbe.probe();
        if (probe.available()) {
            return CudaBackend.open(0, !autocast);
        }
        String missing = EmulatedDevice.unavailable();
        Assumptions.assumeTrue(missing == null, "no CUDA device (" + probe.reason() + ") and no emulated one (" + missing + ")");
        return EmulatedDevice.adversarialBackend(!autocast);
    }

    /** The largest difference of two images' bytes (0–255). */
    private static int maxDiff(byte[] a, byte[] b) {
        assertEquals(a.length, b.length);
        int worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs((a[i] & 0xff) - (b[i] & 0xff)));
        }
        return worst;
    }

    /** Peak signal-to-noise ratio of b against a (8-bit levels), in dB; infinite when equal. */
    private static double psnr(byte[] a, byte[] b) {
        double se = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (a[i] & 0xff) - (b[i] & 0xff);
            se += d * d;
        }
        return 10 * Math.log10(255.0 * 255.0 / (se / a.length));
    }

    /**
     * In float32 on both the kernels add in another order than the CPU, a few ulps per op: at most one
     * level (of 255) apart.
     */
    @Test
    void generationsOnTheGpuKernelsMatchTheCpuAndGraphsMatchEagerSteps() throws Exception {
        generations(false);
    }

    /**
     * The users' setting on a GPU: autocast, where a float32 checkpoint's text encoder and UNet go up
     * as F16 (the VAE stays float32) and products, convolutions and attention run on the tensor cores
     * with the activations rounded to F16, against the CPU in float32 on the same weights (the F16
     * ones rounded as the GPU rounds them). Each network output is within a few F16 roundoffs
     * (2⁻¹¹) of float32's (the conformance cases in autocast), and a level of 255 is 8 such units of
     * the image's range: the pictures may differ by a level here and there, not more, and mostly not
     * at all (PSNR ≥ 50 dB: a mean squared difference under 0.65 levels²).
     */
    @Test
    void autocastGenerationsStayCloseToTheCpuAndGraphsMatchEagerSteps() throws Exception {
        generations(true);
    }

    /**
     * Euler a (ancestral noise each step), two prompts in one batch (CFG as one batch of four), eager
     * and as CUDA graphs, which must replay the eager steps bit for bit; then img2img (the VAE
     * encoder) with a LoRA applied beside the weights. Against the CPU backend.
     */
    private static void generations(boolean autocast) throws Exception {
        List<AutoCloseable> open = new ArrayList<>();
        try (CpuBackend cpu = new CpuBackend(2);
             CudaBackend gpu = gpu(autocast)) {
            System.out.println("GpuPipelineTest on " + gpu.name() + (autocast ? ", autocast" : ", float32"));
            StableDiffusion onCpu = StableDiffusionTest.tinyFromWeights(cpu, open, Map.of(), autocast);
            long empty = gpu.bytesInUse();
            StableDiffusion onGpu = StableDiffusionTest.tinyFromWeights(gpu, open, Map.of(), false);
            assertEquals(residentBytes(autocast), gpu.bytesInUse() - empty, "the weights on the device");
            GenerationRequest r = StableDiffusionTest.cat().steps(3).batch(2, 1).build();
            List<GeneratedImage> want = run(onCpu, r);
            List<GeneratedImage> eager = run(onGpu, r);
            onGpu.setCudaGraphs(true);
            List<GeneratedImage> graphed = run(onGpu, r);
            assertEquals(2, eager.size());
            for (int i = 0; i < want.size(); i++) {
                close(want.get(i).rgb(), eager.get(i).rgb(), autocast, "image " + i);
                assertArrayEquals(eager.get(i).rgb(), graphed.get(i).rgb(), "image " + i + ": graph replays == eager steps");
                assertEquals(want.get(i).parameters(), eager.get(i).parameters());
            }
            byte[] init = new byte[3 * 32 * 32];
            for (int i = 0; i < init.length; i++) {
                init[i] = (byte) (i * 37);
            }
            GenerationRequest edit = StableDiffusionTest.cat().steps(4).prompt("a photo of a cat<lora:lora-kohya:0.7>")
                    .initImage(init, 0.5).build();
            close(run(onCpu, edit).get(0).rgb(), run(onGpu, edit).get(0).rgb(), autocast, "img2img with a LoRA");
        } finally {
            for (AutoCloseable c : open) {
                c.close();
            }
        }
    }

    /**
     * The device memory the tiny model's weights take: one pool block for each of its networks'
     * (the text projection, which SD 1.x does not use, stays behind), of two bytes per value for the
     * text encoder's and the UNet's in autocast, four for the VAE's and in full precision.
     */
    private static long residentBytes(boolean autocast) throws Exception {
        List<AutoCloseable> open = new ArrayList<>();
        try {
            long total = 0;
            for (Map.Entry<String, Tensor> e : StableDiffusionTest.tinyWeights(open).entrySet()) {
                if (e.getKey().equals("text_projection")) {
                    continue;
                }
                int size = autocast && !e.getKey().startsWith("first_stage_model.") ? 2 : 4;
                total += FakeDevice.poolBlockBytes(size * e.getValue().numel());
            }
            return total;
        } finally {
            for (AutoCloseable c : open) {
                c.close();
            }
        }
    }

    /**
     * SDXL: both text encoders (CLIP-L and bigG, one padded with the end token, one with zeros), the
     * size conditioning and the vector input, a negative prompt, the VAE at SDXL's scale, on the
     * tiny SDXL model of {@link SdxlTest}, in float32 and in autocast, against the CPU.
     */
    @Test
    void sdxlGenerationsOnTheGpuKernelsStayCloseToTheCpu() throws Exception {
        for (boolean autocast : new boolean[] {false, true}) {
            List<AutoCloseable> open = new ArrayList<>();
            try (CpuBackend cpu = new CpuBackend(2);
                 CudaBackend gpu = gpu(autocast)) {
                SdxlTest.Parts p = SdxlTest.parts(open);
                Map<String, Tensor> onCpu = new java.util.HashMap<>(p.weights());
                if (autocast) {
                    StableDiffusionTest.roundAsAutocastUploads(onCpu);
                }
                dev.jdiffusion.samplers.DiscreteSchedule schedule = dev.jdiffusion.samplers.DiscreteSchedule.stableDiffusionFloat32();
                StableDiffusion want = StableDiffusion.ofEncoders(cpu, p.tokenizer(), onCpu, m -> SdxlTest.encoders(cpu, m),
                        p.config(), schedule, "sdxl-tiny", StableDiffusion.Family.SDXL);
                StableDiffusion got = StableDiffusion.ofEncoders(gpu, p.tokenizer(), p.weights(),
                        m -> SdxlTest.encoders(gpu, m), p.config(), schedule, "sdxl-tiny", StableDiffusion.Family.SDXL);
                GenerationRequest r = SdxlTest.request().negativePrompt("blurry").build();
                close(run(want, r).get(0).rgb(), run(got, r).get(0).rgb(), autocast, "SDXL");
            } finally {
                for (AutoCloseable c : open) {
                    c.close();
                }
            }
        }
    }

    /** At most one level apart; in autocast also a PSNR of at least 50 dB. */
    private static void close(byte[] want, byte[] got, boolean autocast, String what) {
        int d = maxDiff(want, got);
        double p = psnr(want, got);
        System.out.printf("GpuPipelineTest %s %s: %s%n", autocast ? "autocast" : "float32", what,
                d == 0 ? "identical" : String.format("max %d levels, PSNR %.1f dB", d, p));
        assertTrue(d <= 1 && (!autocast || p >= 50), what + " differs from the CPU's by up to " + d + " levels, PSNR " + p
                + " dB");
    }
}
