//! The density heatmap of the 2D Lab, drawn by `shaders/density.wgsl` through an egui-wgpu paint callback.
//!
//! [`install`] puts the pipelines into the renderer's callback resources once (the app does it with eframe's render
//! state; tests with their own). Each view ([`paint`]) carries its [`DensityParams`]. In `prepare` the density is
//! rendered into the view's own cache texture, and only when something changed (parameters, size, resolution): a
//! view whose sigma and mixture stand still costs one copy per frame while the particles move. While sigma moves the
//! UI asks for half resolution (a quarter of the pixels to evaluate). `paint` copies the cache into egui's pass
//! with `shaders/blit.wgsl` (bilinear when the cache is smaller). Views are told apart by an id, so several can share
//! a frame. Without the resources (another renderer) nothing is drawn. [`render_raw`] runs the density shader
//! offscreen into an `Rgba32Uint` target whose texels are the bits of `(p(y), log p(y), y.x, y.y)` as f32, for the
//! tests that hold the shader against the CPU density (integer targets render on every backend; on GL 32-bit float
//! ones do not).

use std::collections::HashMap;

use eframe::egui_wgpu::{self, wgpu};
use egui::Rect;

use crate::lab::field::Field2;

/// The WGSL source of the density.
pub const SHADER: &str = include_str!("../../../shaders/density.wgsl");

/// The WGSL source of the copy from a view's cache into egui's pass.
pub const BLIT_SHADER: &str = include_str!("../../../shaders/blit.wgsl");

/// Bytes of the blit uniform block: two `vec4`s.
const BLIT_BYTES: usize = 32;

/// Components the shader's uniform array holds.
pub const MAX_COMPONENTS: usize = crate::lab::scene::MAX_COMPONENTS;

/// Bytes of the uniform block: four `vec4`s, then 256 components of two `vec4`s.
const UNIFORM_BYTES: usize = 4 * 16 + MAX_COMPONENTS * 32;

/// What the shader writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Colour, gamma-encoded (the usual `Rgba8Unorm` / `Bgra8Unorm` egui framebuffer).
    Gamma = 0,
    /// Colour, linear (an sRGB framebuffer).
    Linear = 1,
    /// `(p, log p, y.x, y.y)` as the bits of four f32 in an `Rgba32Uint` target (tests).
    Raw = 2,
}

/// One density view: the field's components and how to colour them. Built on the CPU each frame.
#[derive(Clone, Debug, PartialEq)]
pub struct DensityParams {
    /// World window `[xmin, xmax, ymin, ymax]` (y up).
    pub world: [f32; 4],
    /// Density at the top of the colour scale.
    pub top: f32,
    /// Number of contour levels over the colour scale.
    pub levels: f32,
    /// Contour strength, 0 (off) to 1.
    pub contours: f32,
    /// 0: linear colour scale; else a log scale over this many decades below `top`.
    pub log_decades: f32,
    /// Per component: `[mean.x, mean.y, log_coef, 0, p00, p01, p11, 0]`, at most [`MAX_COMPONENTS`].
    pub components: Vec<[f32; 8]>,
    /// Fraction of the view's pixels per side the density is evaluated at (1 = every pixel; 0.5 while sigma
    /// moves), in `[0.125, 1]`.
    pub resolution: f32,
}

impl DensityParams {
    /// The parameters of `field` over `world`, coloured up to `top` (see [`Field2::peak_density`]).
    pub fn new(field: &Field2, world: [f64; 4], top: f64) -> Self {
        let components = field
            .components()
            .iter()
            .take(MAX_COMPONENTS)
            .map(|c| {
                [
                    c.mean[0] as f32,
                    c.mean[1] as f32,
                    c.log_coef as f32,
                    0.0,
                    c.prec[0] as f32,
                    c.prec[1] as f32,
                    c.prec[2] as f32,
                    0.0,
                ]
            })
            .collect();
        Self {
            world: world.map(|v| v as f32),
            top: top.max(f64::MIN_POSITIVE) as f32,
            levels: 10.0,
            contours: 1.0,
            log_decades: 0.0,
            components,
            resolution: 1.0,
        }
    }

    /// The uniform block for a view whose rectangle is `rect_px` (`[x0, y0, width, height]` framebuffer pixels).
    pub fn to_bytes(&self, rect_px: [f32; 4], output: Output) -> Vec<u8> {
        let mut b = Vec::with_capacity(UNIFORM_BYTES);
        let mut f = |v: f32| b.extend_from_slice(&v.to_le_bytes());
        for v in rect_px {
            f(v);
        }
        for v in self.world {
            f(v);
        }
        for v in [self.top, self.levels, self.contours, self.log_decades] {
            f(v);
        }
        let n = self.components.len().min(MAX_COMPONENTS) as u32;
        for v in [n, output as u32, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for c in self.components.iter().take(MAX_COMPONENTS) {
            for v in c {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b.resize(UNIFORM_BYTES, 0);
        b
    }
}

/// A view's cached image and the bind group that copies it.
struct Cache {
    size: [u32; 2],
    view: wgpu::TextureView,
    blit_uniform: wgpu::Buffer,
    blit_group: wgpu::BindGroup,
    /// The uniform bytes the cache was rendered with.
    key: Vec<u8>,
}

/// The density and blit pipelines for one target format, and per view id a uniform buffer and a cache.
pub struct DensityPipeline {
    layout: wgpu::BindGroupLayout,
    pipeline: wgpu::RenderPipeline,
    blit_layout: wgpu::BindGroupLayout,
    blit: wgpu::RenderPipeline,
    format: wgpu::TextureFormat,
    output: Output,
    slots: HashMap<u64, (wgpu::Buffer, wgpu::BindGroup)>,
    caches: HashMap<u64, Cache>,
    /// Density renders into view caches so far (a view that stands still adds none).
    renders: u64,
}

fn fullscreen_pipeline(
    device: &wgpu::Device,
    label: &str,
    module: &wgpu::ShaderModule,
    layout: &wgpu::BindGroupLayout,
    format: wgpu::TextureFormat,
    fragment: &str,
) -> wgpu::RenderPipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(label),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(&pipeline_layout),
        vertex: wgpu::VertexState {
            module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        },
        primitive: wgpu::PrimitiveState::default(),
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some(fragment),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: wgpu::PipelineCompilationOptions::default(),
        }),
        multiview_mask: None,
        cache: None,
    })
}

impl DensityPipeline {
    /// Compiles the shaders for targets of `format` (single-sampled, no depth, as egui's own pass).
    pub fn new(device: &wgpu::Device, format: wgpu::TextureFormat, output: Output) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("walkjump_density"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("walkjump_density_layout"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: std::num::NonZeroU64::new(UNIFORM_BYTES as u64),
                },
                count: None,
            }],
        });
        // Raw output goes to an `Rgba32Uint` target through its own entry point; the blit is never drawn there.
        let (fragment, blit_format) = match output {
            Output::Raw => ("fs_raw", wgpu::TextureFormat::Rgba8Unorm),
            Output::Gamma | Output::Linear => ("fs_main", format),
        };
        let pipeline = fullscreen_pipeline(
            device,
            "walkjump_density",
            &module,
            &layout,
            format,
            fragment,
        );
        let blit_module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("walkjump_density_blit"),
            source: wgpu::ShaderSource::Wgsl(BLIT_SHADER.into()),
        });
        let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("walkjump_density_blit_layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: std::num::NonZeroU64::new(BLIT_BYTES as u64),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
            ],
        });
        let blit = fullscreen_pipeline(
            device,
            "walkjump_density_blit",
            &blit_module,
            &blit_layout,
            blit_format,
            "fs_main",
        );
        Self {
            layout,
            pipeline,
            blit_layout,
            blit,
            format,
            output,
            slots: HashMap::new(),
            caches: HashMap::new(),
            renders: 0,
        }
    }

    /// Writes the uniform block of view `id` (creating its buffer on first use).
    pub fn write(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, id: u64, bytes: &[u8]) {
        let layout = &self.layout;
        let (buffer, _) = self.slots.entry(id).or_insert_with(|| {
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("walkjump_density_params"),
                size: UNIFORM_BYTES as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("walkjump_density_group"),
                layout,
                entries: &[wgpu::BindGroupEntry {
                    binding: 0,
                    resource: buffer.as_entire_binding(),
                }],
            });
            (buffer, group)
        });
        queue.write_buffer(buffer, 0, bytes);
    }

    /// Draws view `id` (written before with [`Self::write`]) into the pass: one full-viewport triangle.
    pub fn draw(&self, id: u64, pass: &mut wgpu::RenderPass<'_>) {
        if let Some((_, group)) = self.slots.get(&id) {
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, group, &[]);
            pass.draw(0..3, 0..1);
        }
    }

    /// Brings view `id`'s cache up to date for a view at `rect_px` (framebuffer pixels), rendering the density into
    /// it (recorded on `encoder`) only when the parameters, size or resolution changed.
    fn prepare_view(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        id: u64,
        rect_px: [f32; 4],
        params: &DensityParams,
    ) {
        // Whole pixels, so that at full resolution the copy is texel for pixel (no blending at half offsets).
        let rect_px = rect_px.map(f32::round);
        let res = if params.resolution.is_finite() {
            params.resolution.clamp(0.125, 1.0)
        } else {
            1.0
        };
        // Never larger than the device allows (downlevel GL adapters stop at 2048).
        let max = device.limits().max_texture_dimension_2d.max(1);
        let side = |v: f32| ((v * res).ceil() as u32).clamp(1, max);
        let size = [side(rect_px[2]), side(rect_px[3])];
        let bytes = params.to_bytes([0.0, 0.0, size[0] as f32, size[1] as f32], self.output);
        if self.caches.get(&id).is_none_or(|c| c.size != size) {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("walkjump_density_cache"),
                size: wgpu::Extent3d {
                    width: size[0],
                    height: size[1],
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: self.format,
                usage: wgpu::TextureUsages::RENDER_ATTACHMENT
                    | wgpu::TextureUsages::TEXTURE_BINDING,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let blit_uniform = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("walkjump_density_blit_params"),
                size: BLIT_BYTES as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let blit_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("walkjump_density_blit_group"),
                layout: &self.blit_layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: blit_uniform.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                ],
            });
            self.caches.insert(
                id,
                Cache {
                    size,
                    view,
                    blit_uniform,
                    blit_group,
                    key: Vec::new(),
                },
            );
        }
        let stale = self.caches.get(&id).is_some_and(|c| c.key != bytes);
        if stale {
            self.write(device, queue, id, &bytes);
            if let (Some(cache), Some((_, group))) = (self.caches.get(&id), self.slots.get(&id)) {
                let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("walkjump_density_cache"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &cache.view,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                        depth_slice: None,
                    })],
                    ..Default::default()
                });
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.draw(0..3, 0..1);
            }
            if let Some(cache) = self.caches.get_mut(&id) {
                cache.key = bytes;
            }
            self.renders += 1;
        }
        if let Some(cache) = self.caches.get(&id) {
            let mut b = Vec::with_capacity(BLIT_BYTES);
            for v in rect_px
                .into_iter()
                .chain([size[0] as f32, size[1] as f32, 0.0, 0.0])
            {
                b.extend_from_slice(&v.to_le_bytes());
            }
            queue.write_buffer(&cache.blit_uniform, 0, &b);
        }
    }

    /// Density renders into view caches so far.
    pub fn renders(&self) -> u64 {
        self.renders
    }

    /// Copies view `id`'s cache into the pass.
    fn paint_view(&self, id: u64, pass: &mut wgpu::RenderPass<'_>) {
        if let Some(cache) = self.caches.get(&id) {
            pass.set_pipeline(&self.blit);
            pass.set_bind_group(0, &cache.blit_group, &[]);
            pass.draw(0..3, 0..1);
        }
    }
}

/// Puts the density pipeline for the window's framebuffer into the renderer (once per render state).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let format = render_state.target_format;
    let output = if format.is_srgb() {
        Output::Linear
    } else {
        Output::Gamma
    };
    let pipeline = DensityPipeline::new(&render_state.device, format, output);
    render_state
        .renderer
        .write()
        .callback_resources
        .insert(pipeline);
}

/// The paint callback of one view.
struct DensityCallback {
    id: u64,
    rect: Rect,
    params: DensityParams,
}

impl egui_wgpu::CallbackTrait for DensityCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(p) = resources.get_mut::<DensityPipeline>() {
            let s = screen.pixels_per_point;
            let rect_px = [
                self.rect.min.x * s,
                self.rect.min.y * s,
                self.rect.width() * s,
                self.rect.height() * s,
            ];
            p.prepare_view(device, queue, encoder, self.id, rect_px, &self.params);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        if let Some(p) = resources.get::<DensityPipeline>() {
            p.paint_view(self.id, pass);
        }
    }
}

/// Draws the density of `params` into `rect` (view `id`; distinct views in one frame need distinct ids).
pub fn paint(painter: &egui::Painter, rect: Rect, id: u64, params: DensityParams) {
    painter.add(egui_wgpu::Callback::new_paint_callback(
        rect,
        DensityCallback { id, rect, params },
    ));
}

/// Why an offscreen render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The size is zero or too large.
    #[error("cannot render {0} x {1} pixels")]
    Size(u32, u32),
    /// The GPU did not finish or the read-back failed.
    #[error("GPU read-back failed: {0}")]
    Readback(String),
}

/// Renders `params` offscreen at `width x height` with the same shader (entry point `fs_raw`) into an `Rgba32Uint`
/// target holding f32 bits, and reads it back: `[height * width]` texels `(p(y), log p(y), y.x, y.y)` in row-major order, row 0 at the top (largest y).
pub fn render_raw(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    params: &DensityParams,
    width: u32,
    height: u32,
) -> Result<Vec<[f32; 4]>, RenderError> {
    if width == 0 || height == 0 || width > 8192 || height > 8192 {
        return Err(RenderError::Size(width, height));
    }
    let format = wgpu::TextureFormat::Rgba32Uint;
    let mut pipeline = DensityPipeline::new(device, format, Output::Raw);
    let bytes = params.to_bytes([0.0, 0.0, width as f32, height as f32], Output::Raw);
    pipeline.write(device, queue, 0, &bytes);
    let size = wgpu::Extent3d {
        width,
        height,
        depth_or_array_layers: 1,
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("walkjump_density_raw"),
        size,
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
    let row = width as usize * 16;
    let align = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as usize;
    let padded = row.div_ceil(align) * align;
    let out = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("walkjump_density_readback"),
        size: (padded * height as usize) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("walkjump_density_raw"),
    });
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("walkjump_density_raw"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                resolve_target: None,
                ops: wgpu::Operations {
                    load: wgpu::LoadOp::Clear(wgpu::Color::TRANSPARENT),
                    store: wgpu::StoreOp::Store,
                },
                depth_slice: None,
            })],
            ..Default::default()
        });
        pipeline.draw(0, &mut pass);
    }
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &out,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(padded as u32),
                rows_per_image: None,
            },
        },
        size,
    );
    let index = queue.submit(std::iter::once(encoder.finish()));
    let slice = out.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(std::time::Duration::from_secs(30)),
        })
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    rx.recv()
        .map_err(|e| RenderError::Readback(e.to_string()))?
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    let data = slice
        .get_mapped_range()
        .map_err(|e| RenderError::Readback(e.to_string()))?;
    let mut texels = Vec::with_capacity(width as usize * height as usize);
    for r in data.chunks_exact(padded) {
        for px in r[..row].chunks_exact(16) {
            let mut t = [0.0f32; 4];
            for (v, b) in t.iter_mut().zip(px.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            texels.push(t);
        }
    }
    Ok(texels)
}

/// The colour the shader gives a point at fraction `t` of the colour scale (gamma-encoded; for the legend).
pub fn colormap(t: f32) -> egui::Color32 {
    const C: [[f32; 3]; 5] = [
        [0.267, 0.005, 0.329],
        [0.231, 0.322, 0.545],
        [0.129, 0.569, 0.549],
        [0.369, 0.788, 0.384],
        [0.992, 0.906, 0.145],
    ];
    let s = if t.is_finite() {
        t.clamp(0.0, 1.0) * 4.0
    } else {
        0.0
    };
    let i = (s.floor() as usize).min(3);
    let f = (s - i as f32).min(1.0);
    let c: Vec<u8> = (0..3)
        .map(|j| ((C[i][j] + (C[i + 1][j] - C[i][j]) * f) * 255.0).round() as u8)
        .collect();
    egui::Color32::from_rgb(c[0], c[1], c[2])
}
