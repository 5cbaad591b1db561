package dev.jdiffusion.conformance;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.jdiffusion.cuda.CudaBackend;
import dev.jdiffusion.cuda.FakeDevice;
import dev.jdiffusion.pipeline.GeneratedImage;
import dev.jdiffusion.pipeline.GenerationRequest;
import dev.jdiffusion.pipeline.StableDiffusion;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The whole pipeline on the CUDA backend over a {@link FakeDevice} (which checks every launch and
 * pointer but computes nothing, so the pictures are not looked at): where data crosses between host
 * and device, and that device memory is uploaded once and reused. The tiny conformance model.
 */
class FakeGpuPipelineTest {

    private static List<GeneratedImage> run(StableDiffusion sd, GenerationRequest r) {
        return sd.generate(r, StableDiffusion.ProgressListener.NONE);
    }

    @Test
    void weightsAreUploadedOnceAndEachStepCrossesOnlyItsLatents() throws Exception {
        List<AutoCloseable> open = new ArrayList<>();
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            StableDiffusion sd = StableDiffusionTest.tinyFromWeights(gpu, open, Map.of());
            long resident = gpu.bytesInUse();
            assertTrue(dev.copiesToDevice() > 100, "the weights went up at load: " + dev.copiesToDevice());
            GenerationRequest.Builder b = StableDiffusionTest.cat().sampler("Euler");

            List<GeneratedImage> first = run(sd, b.steps(4).build());
            assertEquals(32 * 32 * 3, first.get(0).rgb().length);
            assertEquals(resident, gpu.bytesInUse(), "a generation gives back everything but the weights");
            int allocations = dev.allocations();

            int up = dev.copiesToDevice();
            int down = dev.copiesToHost();
            run(sd, b.steps(4).build());
            int up4 = dev.copiesToDevice() - up;
            int down4 = dev.copiesToHost() - down;
            up = dev.copiesToDevice();
            down = dev.copiesToHost();
            run(sd, b.steps(8).build());
            int up8 = dev.copiesToDevice() - up;
            int down8 = dev.copiesToHost() - down;
            assertEquals(2 * 4, up8 - up4, "each extra step sends its latents and timesteps: " + up4 + " vs " + up8);
            assertEquals(4, down8 - down4, "each extra step takes back the model output: " + down4 + " vs " + down8);
            assertTrue(up4 < 2 * 4 + 12, up4 + " copies to the device in a 4-step generation: weights sent again?");
            assertEquals(allocations, dev.allocations(), "later generations reuse the device memory of the first");
            assertEquals(resident, gpu.bytesInUse());

            run(sd, b.steps(3).prompt("a photo of a cat<lora:lora-kohya:0.7>").batch(2, 1).build());
            assertEquals(resident, gpu.bytesInUse(), "LoRA factors and merged text-encoder weights are given back");

            byte[] init = new byte[3 * 32 * 32];
            run(sd, b.steps(4).prompt("a photo of a cat").initImage(init, 0.5).build());
            assertEquals(resident, gpu.bytesInUse(), "img2img gives back its encoder's memory");
        } finally {
            for (AutoCloseable c : open) {
                c.close();
            }
        }
    }

    @Test
    void withCudaGraphsEveryStepIsOneGraphLaunchAndTheGraphIsGivenBackWithTheGeneration() throws Exception {
        List<AutoCloseable> open = new ArrayList<>();
        FakeDevice dev = new FakeDevice();
        try (CudaBackend gpu = dev.backend()) {
            StableDiffusion sd = StableDiffusionTest.tinyFromWeights(gpu, open, Map.of());
            sd.setCudaGraphs(true);
            long resident = gpu.bytesInUse();
            GenerationRequest.Builder b = StableDiffusionTest.cat().sampler("Euler");

            int graphs = dev.graphLaunches();
            int launches = dev.launches();
            run(sd, b.steps(4).build());
            int launches4 = dev.launches() - launches;
            assertEquals(4, dev.graphLaunches() - graphs, "one graph launch per step (CFG as one batch)");
            assertEquals(resident, gpu.bytesInUse(), "the generation gives back its graph's memory");

            graphs = dev.graphLaunches();
            int up = dev.copiesToDevice();
            launches = dev.launches();
            run(sd, b.steps(8).build());
            assertEquals(8, dev.graphLaunches() - graphs);
            int perStep = (dev.launches() - launches - launches4) / 4;
            assertTrue(perStep > 50, "a replay runs the whole UNet: " + perStep + " kernels per extra step");

            // a batch of two runs a graph of its own shapes
            graphs = dev.graphLaunches();
            run(sd, b.steps(3).batch(2, 1).build());
            assertEquals(3, dev.graphLaunches() - graphs);
            assertEquals(resident, gpu.bytesInUse());
            assertTrue(dev.copiesToDevice() > up, "latents and timesteps still go up each step");

            // a LoRA applied beside the weights: its factors are on the device, so the step is still one graph
            graphs = dev.graphLaunches();
            run(sd, b.steps(3).batch(1, 1).prompt("a photo of a cat<lora:lora-kohya:0.7>").build());
            assertEquals(3, dev.graphLaunches() - graphs);
            assertEquals(resident, gpu.bytesInUse());
        } finally {
            for (AutoCloseable c : open) {
                c.close();
            }
        }
    }
}
