"""Mappings as data, and the small engines that run them. Pure: no I/O beyond reading a file.

- `paths.py`: the one path syntax and walker, used by everything below and by the FHIR
  REST layer (search matching, _sort, _include).
- `loading.py`: reading a mapping file and reporting every mistake in it, for both kinds.
- `spec.py`, `engine.py`, `transforms.py`: PAS (and HL7 v2) records <-> FHIR, both ways.
- `stu3_to_r4/`: NHS STU3 answers -> R4, one way (GP Connect allergies).

Why two engines and not one (issue 9 asked for one). Both kinds of file share a rule
shape (source path -> target path, a named transform, a value map), the path syntax and
the loader; what runs around a rule is opposite:
- Failure policy. PAS -> FHIR is the intake of a store of record: a record with any
  problem is refused whole, every problem listed for the clerk (MappingFailed). STU3 -> R4
  passes on what a GP system said: what R4 cannot hold is dropped and the client is warned
  in the searchset's OperationOutcome, and the rest is served.
- Direction. PAS rules run both ways, so each transform is a reversible pair and each code
  table invertible. STU3 rules run one way (the façade never writes to GP Connect), and
  their transforms could not be reversed anyway: bundle_reference swaps a bundle-local
  Practitioner for its SDS identifier, patient_reference replaces the reference.
- Inputs. A PAS transform maps a value to a value; an STU3 transform needs a context:
  whose record, the bundle around the resource, somewhere to put warnings.
- Shape. STU3 rules nest over repeating backbone elements (reaction, note: `many`,
  `rules`, `require`); PAS records are flat fields checked by pattern, length, required
  and requires, written through selectors that also write the discriminator.
One engine would carry every one of these as a switch, without removing a line of either
file. Reconsider when a third mapping shows the same shape as one of them: the e-RS STU3
ReferralRequest -> R4 conversion (server/sources/referrals/ers_mapping.py) is the first
candidate for the STU3 engine, once it has transforms for a subject, the first and the
rest of a list, and dropping `#local` references.
"""
