//! A logical volume as a readable layer: LV offsets mapped through its segments onto the PVs.

use super::vg::{Lv, Vg};
use crate::io::{ReadAt, past_end, within};
use crate::{Error, Result};
use std::sync::Arc;

/// The bytes of one LV, read from the PVs that hold it.
pub struct LvReader {
    vg: Arc<Vg>,
    lv: usize,
    /// Readers of the VG's PVs, by index into `vg.pvs` (`None`: not present).
    pvs: Vec<Option<Arc<dyn ReadAt>>>,
}

impl LvReader {
    /// LV `lv` (index into `vg.lvs`) over `pvs`. Refused when the LV is of a type luksfs does
    /// not map, or touches a PV that is not present.
    pub fn new(vg: Arc<Vg>, lv: usize, pvs: Vec<Option<Arc<dyn ReadAt>>>) -> Result<LvReader> {
        let l: &Lv = vg.lvs.get(lv).ok_or_else(|| Error::corrupt("no such LV"))?;
        if let Some(why) = &l.unsupported {
            return Err(Error::unsupported(format!("LV {}/{} is a {why}: not supported", vg.name, l.name)));
        }
        for seg in &l.segments {
            if let super::vg::SegmentKind::Striped { stripes, .. } = &seg.kind {
                for s in stripes {
                    if pvs.get(s.pv_index).and_then(|p| p.as_ref()).is_none() {
                        let uuid = vg.pvs.get(s.pv_index).map_or("?", |p| p.uuid.as_str());
                        return Err(Error::unsupported(format!(
                            "LV {}/{} needs PV {} ({uuid}), which is not in this image",
                            vg.name, l.name, s.pv
                        )));
                    }
                }
            }
        }
        Ok(LvReader { vg, lv, pvs })
    }
}

impl ReadAt for LvReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let lv = &self.vg.lvs[self.lv];
        if !within(offset, buf.len(), lv.size) {
            return Err(past_end("the logical volume", offset, buf.len(), lv.size));
        }
        let mut done = 0usize;
        while done < buf.len() {
            let (pv, at, run) = lv.map(&self.vg, offset + done as u64)?;
            let n = run.min((buf.len() - done) as u64) as usize;
            if n == 0 {
                return Err(Error::corrupt(format!("LV {}/{}: empty mapping", self.vg.name, lv.name)));
            }
            let r = self.pvs.get(pv).and_then(|p| p.as_ref()).ok_or_else(|| Error::unsupported("PV not present"))?;
            r.read_exact_at(&mut buf[done..done + n], at)?;
            done += n;
        }
        Ok(())
    }
    fn size(&self) -> u64 {
        self.vg.lvs[self.lv].size
    }
}
