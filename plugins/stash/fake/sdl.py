"""The part of Stash's GraphQL API the fake server serves, written for it.

Names and types follow Stash's API (so that sluiced's documents, which are validated
against the real schema, run here unchanged); everything sluiced does not use is left out.
"""

SDL = """
scalar Time
scalar Int64
scalar Map
scalar PluginConfigMap

enum SortDirectionEnum { ASC DESC }
enum CriterionModifier {
  EQUALS NOT_EQUALS GREATER_THAN LESS_THAN IS_NULL NOT_NULL INCLUDES_ALL INCLUDES EXCLUDES
  MATCHES_REGEX NOT_MATCHES_REGEX BETWEEN NOT_BETWEEN
}
enum GenderEnum { MALE FEMALE TRANSGENDER_MALE TRANSGENDER_FEMALE INTERSEX NON_BINARY }
enum CircumisedEnum { CUT UNCUT }

input FindFilterType { q: String page: Int per_page: Int sort: String direction: SortDirectionEnum }
input TimestampCriterionInput { value: String! value2: String modifier: CriterionModifier! }
input IntCriterionInput { value: Int! value2: Int modifier: CriterionModifier! }

input FileFilterType { AND: FileFilterType OR: FileFilterType NOT: FileFilterType updated_at: TimestampCriterionInput }
input SceneMarkerFilterType { updated_at: TimestampCriterionInput scene_filter: SceneFilterType }
input SceneFilterType {
  AND: SceneFilterType OR: SceneFilterType NOT: SceneFilterType
  id: IntCriterionInput updated_at: TimestampCriterionInput
  files_filter: FileFilterType markers_filter: SceneMarkerFilterType
}
input PerformerFilterType {
  AND: PerformerFilterType OR: PerformerFilterType NOT: PerformerFilterType
  id: IntCriterionInput updated_at: TimestampCriterionInput
}
input StringCriterionInput { value: String! modifier: CriterionModifier! }
input TagFilterType {
  AND: TagFilterType OR: TagFilterType NOT: TagFilterType updated_at: TimestampCriterionInput
  aliases: StringCriterionInput
}
input StudioFilterType {
  AND: StudioFilterType OR: StudioFilterType NOT: StudioFilterType updated_at: TimestampCriterionInput
}

type Version { version: String hash: String! build_time: String! }
type StashID { endpoint: String! stash_id: String! updated_at: Time! }
type Fingerprint { type: String! value: String! }
type Group { id: ID! }
type SceneGroup { group: Group! scene_index: Int }

type Performer {
  id: ID! name: String! disambiguation: String alias_list: [String!]! gender: GenderEnum
  birthdate: String death_date: String country: String ethnicity: String eye_color: String
  hair_color: String height_cm: Int weight: Int measurements: String fake_tits: String
  penis_length: Float circumcised: CircumisedEnum career_length: String tattoos: String
  piercings: String urls: [String!] details: String rating100: Int favorite: Boolean!
  ignore_auto_tag: Boolean! custom_fields: Map! created_at: Time! updated_at: Time!
  tags: [Tag!]! stash_ids: [StashID!]!
}
type Tag {
  id: ID! name: String! sort_name: String description: String aliases: [String!]!
  favorite: Boolean! ignore_auto_tag: Boolean! created_at: Time! updated_at: Time!
  parents: [Tag!]! children: [Tag!]! stash_ids: [StashID!]!
}
type Studio {
  id: ID! name: String! aliases: [String!]! urls: [String!]! details: String rating100: Int
  favorite: Boolean! ignore_auto_tag: Boolean! created_at: Time! updated_at: Time!
  parent_studio: Studio tags: [Tag!]! stash_ids: [StashID!]!
}
type Folder { id: ID! path: String! parent_folder: Folder zip_file: BasicFile }
type BasicFile { id: ID! path: String! basename: String! }
type VideoFile {
  id: ID! path: String! basename: String! size: Int64! duration: Float! width: Int! height: Int!
  frame_rate: Float! bit_rate: Int! video_codec: String! audio_codec: String! format: String!
  mod_time: Time! created_at: Time! updated_at: Time! fingerprints: [Fingerprint!]!
  parent_folder: Folder! zip_file: BasicFile
}
type SceneMarker {
  id: ID! scene: Scene! title: String! seconds: Float! end_seconds: Float created_at: Time! updated_at: Time!
  primary_tag: Tag! tags: [Tag!]!
}
type Scene {
  id: ID! title: String code: String details: String director: String urls: [String!]!
  date: String rating100: Int organized: Boolean! created_at: Time! updated_at: Time!
  studio: Studio performers: [Performer!]! tags: [Tag!]! groups: [SceneGroup!]!
  stash_ids: [StashID!]! files: [VideoFile!]! scene_markers: [SceneMarker!]!
}

type FindPerformersResultType { count: Int! performers: [Performer!]! }
type FindTagsResultType { count: Int! tags: [Tag!]! }
type FindStudiosResultType { count: Int! studios: [Studio!]! }
type FindScenesResultType { count: Int! scenes: [Scene!]! }
type FindSceneMarkersResultType { count: Int! scene_markers: [SceneMarker!]! }

type ConfigResult { plugins(include: [ID!]): PluginConfigMap! }

type Query {
  version: Version!
  configuration: ConfigResult!
  findScene(id: ID): Scene
  findPerformer(id: ID!): Performer
  findTag(id: ID!): Tag
  findStudio(id: ID!): Studio
  findScenes(scene_filter: SceneFilterType, ids: [ID!], filter: FindFilterType): FindScenesResultType!
  findPerformers(performer_filter: PerformerFilterType, filter: FindFilterType, ids: [ID!]): FindPerformersResultType!
  findTags(tag_filter: TagFilterType, filter: FindFilterType, ids: [ID!]): FindTagsResultType!
  findStudios(studio_filter: StudioFilterType, filter: FindFilterType, ids: [ID!]): FindStudiosResultType!
  findSceneMarkers(scene_marker_filter: SceneMarkerFilterType, filter: FindFilterType, ids: [ID!]): FindSceneMarkersResultType!
}
"""
