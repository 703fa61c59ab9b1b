//! Frame rate of the 2D Lab while sigma moves, in a real window (run it under `xvfb-run` for the software renderer).
//!
//! ```text
//! xvfb-run -s "-screen 0 1920x1440x24" cargo run --release --example lab_fps -- --mode density --seconds 10
//! xvfb-run -s "-screen 0 1920x1440x24" cargo run --release --example lab_fps -- --mode lab --particles 10000
//! ```
//! `--mode density`: only the shader-rendered density, 1000 x 1000 points, contours on, sigma swept every frame
//! (the field and its colour scale are rebuilt on the CPU each frame, as when the slider moves); `--resolution 0.5`
//! evaluates it at half resolution per side, as the workspace does while sigma moves.
//! `--mode lab`: the whole 2D Lab workspace in a window sized so that its density view is 1000 x 1000, with the
//! particles running (`--particles`, `--ab` for two sets), arrows, i-spheres, jumps, trails and histograms.
//! Prints the frames drawn and the mean / median / 95th-percentile frame time after a one-second warm-up.
//! `--mode offscreen`: the shader alone into a 1000 x 1000 offscreen texture on a headless device (no window).
//! `--off arrows,spheres,jumps,trails,contours` turns overlays off in `--mode lab`.
//! `--window WxH` sets the window size in points.
//! `--screenshot PATH` saves the window as PNG at the end.
//! `--fixed-sigma` holds sigma still (the cached density is only copied each frame).
//! Vsync is off unless `--vsync` is given; `--no-shader` draws a flat rectangle instead of the density (the baseline
//! cost of the window, the CPU field and egui).

use std::time::Instant;

use eframe::egui;
use eframe::egui_wgpu::wgpu;
use walkjump::app::lab::density::{self, DensityParams};
use walkjump::app::lab::{LabAction, LabSettings, LabState};
use walkjump::lab::field::Field2;
use walkjump::lab::scene::{LabPreset, Scene};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Density,
    Lab,
}

struct Bench {
    mode: Mode,
    seconds: f64,
    start: Instant,
    last: Option<Instant>,
    frames_ms: Vec<f64>,
    settings: LabSettings,
    state: LabState,
    scene: Scene,
    started_run: bool,
    pixels: [f32; 2],
    shader: bool,
    resolution: f32,
    fixed: bool,
    /// Process CPU seconds when the measurement started.
    cpu0: Option<f64>,
    /// The window's content size, points.
    window: egui::Vec2,
    /// Save the window as PNG here at the end.
    screenshot: Option<String>,
    shot_done: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    reported: bool,
}

/// User + system CPU seconds of this process so far (Linux `/proc/self/stat`, 100 ticks per second).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

impl Bench {
    fn sigma(&self) -> f64 {
        if self.fixed {
            return 0.6;
        }
        let t = self.start.elapsed().as_secs_f64();
        0.2 + 0.8 * (0.5 + 0.5 * (1.7 * t).sin())
    }

    fn report(&self) {
        if let (Some(c0), Some(c1)) = (self.cpu0, cpu_seconds()) {
            let n = self.frames_ms.len().max(1) as f64;
            println!(
                "process CPU time (all threads, llvmpipe's included): {:.1} ms per frame; load average {}",
                (c1 - c0) * 1000.0 / n,
                std::fs::read_to_string("/proc/loadavg")
                    .unwrap_or_default()
                    .trim()
            );
        }
        let mut v = self.frames_ms.clone();
        if v.is_empty() {
            println!("no frames measured");
            return;
        }
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let median = v[v.len() / 2];
        let p95 = v[(v.len() * 95 / 100).min(v.len() - 1)];
        println!(
            "mode {}: window {}x{} points, {} frames, view {}x{} px; mean {:.2} ms ({:.1} fps), median {:.2} ms ({:.1} fps), p95 {:.2} ms",
            if self.mode == Mode::Density {
                "density"
            } else {
                "lab"
            },
            self.window.x,
            self.window.y,
            v.len(),
            self.pixels[0],
            self.pixels[1],
            mean,
            1000.0 / mean,
            median,
            1000.0 / median,
            p95
        );
    }
}

impl eframe::App for Bench {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let now = Instant::now();
        if self.cpu0.is_none() && self.start.elapsed().as_secs_f64() > 1.0 {
            self.cpu0 = cpu_seconds();
        }
        if let Some(last) = self.last
            && self.start.elapsed().as_secs_f64() > 1.0
        {
            self.frames_ms.push((now - last).as_secs_f64() * 1000.0);
        }
        self.last = Some(now);
        let sigma = self.sigma();
        self.window = ui.ctx().content_rect().size();
        match self.mode {
            Mode::Density => {
                egui::CentralPanel::default().show(ui, |ui| {
                    let (rect, _) =
                        ui.allocate_exact_size(egui::vec2(1000.0, 1000.0), egui::Sense::hover());
                    self.pixels = [
                        rect.width() * ui.ctx().pixels_per_point(),
                        rect.height() * ui.ctx().pixels_per_point(),
                    ];
                    if let Ok(field) = self.scene.mixture(sigma).and_then(Field2::new) {
                        let top = field.peak_density();
                        let mut params = DensityParams::new(&field, [-5.0, 5.0, -5.0, 5.0], top);
                        params.resolution = self.resolution;
                        if self.shader {
                            density::paint(ui.painter(), rect, 1, params);
                        } else {
                            ui.painter()
                                .rect_filled(rect, 0.0, egui::Color32::DARK_BLUE);
                        }
                    }
                });
            }
            Mode::Lab => {
                self.settings.sigma = sigma;
                if !self.started_run {
                    self.started_run = true;
                    self.state
                        .apply(&mut self.settings, vec![LabAction::RunPause]);
                }
                walkjump::app::lab::show(ui, &mut self.settings, &mut self.state);
                self.pixels = [self.state.view_side() * ui.ctx().pixels_per_point(); 2];
            }
        }
        if self.start.elapsed().as_secs_f64() > self.seconds + 1.0 {
            match (&self.screenshot, self.shot_done.as_ref()) {
                (Some(path), None) => {
                    // Ask once for the window's pixels; close when they are written.
                    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                    self.shot_done = Some(done.clone());
                    let path = path.clone();
                    ui.ctx().request_screenshot(move |img| {
                        let [w, h] = img.size;
                        let bytes: Vec<u8> = img.pixels.iter().flat_map(|c| c.to_array()).collect();
                        match image::RgbaImage::from_raw(w as u32, h as u32, bytes) {
                            Some(rgba) => match rgba.save(&path) {
                                Ok(()) => println!("screenshot: {path}"),
                                Err(e) => println!("screenshot failed: {e}"),
                            },
                            None => println!("screenshot failed: wrong size"),
                        }
                        done.store(true, std::sync::atomic::Ordering::SeqCst);
                    });
                }
                (Some(_), Some(done)) if !done.load(std::sync::atomic::Ordering::SeqCst) => {}
                _ => {
                    if !self.reported {
                        self.reported = true;
                        self.report();
                    }
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
        }
        ui.ctx().request_repaint();
    }
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let mode = match value("--mode").as_deref() {
        Some("offscreen") => {
            return offscreen(
                value("--seconds")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(5.0),
            );
        }
        Some("lab") => Mode::Lab,
        Some("density") | None => Mode::Density,
        Some(other) => return Err(format!("unknown mode {other} (density, lab, offscreen)")),
    };
    let seconds: f64 = value("--seconds")
        .map(|s| s.parse().map_err(|e| format!("--seconds: {e}")))
        .transpose()?
        .unwrap_or(10.0);
    let particles: usize = value("--particles")
        .map(|s| s.parse().map_err(|e| format!("--particles: {e}")))
        .transpose()?
        .unwrap_or(10_000);
    let vsync = args.iter().any(|a| a == "--vsync");
    let screenshot = value("--screenshot");
    let ab = args.iter().any(|a| a == "--ab");
    // Baseline: everything but the shader (a flat rectangle instead).
    let no_shader = args.iter().any(|a| a == "--no-shader");
    // sigma held at 0.6: the density is rendered once and copied from its cache every frame.
    let fixed = args.iter().any(|a| a == "--fixed-sigma");
    let resolution: f32 = value("--resolution")
        .map(|s| s.parse().map_err(|e| format!("--resolution: {e}")))
        .transpose()?
        .unwrap_or(1.0);
    let scene = Scene::preset(LabPreset::Ring);
    let mut settings = LabSettings {
        scene: scene.clone(),
        particles,
        ab,
        steps_per_frame: 2,
        ..LabSettings::default()
    };
    // `--off arrows,spheres,jumps,trails,contours`: turn overlays off to see what each costs.
    for item in value("--off").unwrap_or_default().split(',') {
        match item {
            "arrows" => settings.arrows = false,
            "spheres" => settings.spheres = false,
            "jumps" => settings.jumps = false,
            "trails" => settings.trails = false,
            "contours" => settings.contours = false,
            "" => {}
            other => return Err(format!("--off: unknown overlay {other}")),
        }
    }
    // The lab's density view is min(width - 400, height - 260) points square: leave room for 1000.
    let size = match mode {
        Mode::Density => [1040.0, 1040.0],
        Mode::Lab if ab => [2560.0, 1300.0],
        Mode::Lab => [1420.0, 1300.0],
    };
    // `--window WxH` overrides the window size (points).
    let size = match value("--window").and_then(|v| {
        let (w, h) = v.split_once('x')?;
        Some([w.parse::<f32>().ok()?, h.parse::<f32>().ok()?])
    }) {
        Some(s) => s,
        None => size,
    };
    let mut native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("walkjump lab fps")
            .with_inner_size(size),
        persist_window: false,
        ..Default::default()
    };
    if !vsync {
        native.wgpu_options.surface.present_mode = wgpu::PresentMode::AutoNoVsync;
    }
    eframe::run_native(
        "walkjump-lab-fps",
        native,
        Box::new(move |cc| {
            if let Some(rs) = cc.wgpu_render_state.as_ref() {
                let info = rs.adapter.get_info();
                println!(
                    "adapter: {} ({:?}), format {:?}",
                    info.name, info.backend, rs.target_format
                );
                density::install(rs);
            }
            Ok(Box::new(Bench {
                mode,
                seconds,
                start: Instant::now(),
                last: None,
                frames_ms: Vec::new(),
                settings,
                state: LabState::default(),
                scene,
                started_run: false,
                pixels: [0.0; 2],
                shader: !no_shader,
                resolution,
                fixed,
                cpu0: None,
                window: egui::Vec2::ZERO,
                screenshot,
                shot_done: None,
                reported: false,
            }))
        }),
    )
    .map_err(|e| e.to_string())
}

/// The shader alone: renders the ring at 1000 x 1000 into an offscreen `Rgba8Unorm` texture on a headless device,
/// sweeping sigma, and reports the time per frame (no window, no present, no egui).
fn offscreen(seconds: f64) -> Result<(), String> {
    let made = std::panic::catch_unwind(|| {
        egui_kittest::wgpu::create_render_state(
            egui_kittest::wgpu::default_wgpu_setup(),
            eframe::egui_wgpu::RendererOptions::PREDICTABLE,
        )
    });
    let rs = made.map_err(|_| "no wgpu adapter".to_string())?;
    let info = rs.adapter.get_info();
    println!("adapter: {} ({:?})", info.name, info.backend);
    let (device, queue) = (&rs.device, &rs.queue);
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let mut pipeline = density::DensityPipeline::new(device, format, density::Output::Gamma);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("lab_fps"),
        size: wgpu::Extent3d {
            width: 1000,
            height: 1000,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let scene = Scene::preset(LabPreset::Ring);
    let start = Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < seconds {
        let t0 = Instant::now();
        let sigma = 0.2 + 0.8 * (0.5 + 0.5 * (1.7 * start.elapsed().as_secs_f64()).sin());
        let field = scene
            .mixture(sigma)
            .and_then(Field2::new)
            .map_err(|e| e.to_string())?;
        let params = DensityParams::new(&field, [-5.0, 5.0, -5.0, 5.0], field.peak_density());
        pipeline.write(
            device,
            queue,
            0,
            &params.to_bytes([0.0, 0.0, 1000.0, 1000.0], density::Output::Gamma),
        );
        let mut encoder =
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: None,
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                    depth_slice: None,
                })],
                ..Default::default()
            });
            pipeline.draw(0, &mut pass);
        }
        let index = queue.submit(std::iter::once(encoder.finish()));
        device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| e.to_string())?;
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "mode offscreen: {} frames of 1000x1000 px (ring of eight); mean {:.2} ms ({:.1} fps), median {:.2} ms",
        times.len(),
        mean,
        1000.0 / mean,
        times[times.len() / 2]
    );
    Ok(())
}
