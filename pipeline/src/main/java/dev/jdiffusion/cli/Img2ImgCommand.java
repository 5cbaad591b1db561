package dev.jdiffusion.cli;

import picocli.CommandLine.Command;

/** img2img: {@link GenerateCommand} that starts from a picture, which it requires. */
@Command(name = "img2img", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Redraw a picture guided by a prompt (img2img) with a Stable Diffusion 1.x or 2.x checkpoint.",
            "The picture (--init-image) is encoded, noised to the level --denoising-strength picks (0 keeps it,",
            "1 replaces it; the steps run follow --strength-rule) and denoised towards the prompt. The output has",
            "the picture's size unless --width and --height resize it. Without --model it runs the demo model."})
final class Img2ImgCommand extends GenerateCommand {
    @Override
    public Integer call() throws Exception {
        if (initImage == null) {
            throw new IllegalArgumentException("img2img needs the picture to start from: --init-image FILE");
        }
        return super.call();
    }
}
